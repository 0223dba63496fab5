"""The package's layers: every import, lazy ones included, points down the pipeline order, and no two
modules import each other at load time (docs/design.md, "Code map")."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "workflow" / "evoswarm"

# Lowest first. A unit is a subpackage or a root module; a unit may import itself and what stands before it.
LAYERS = [
    "io",
    "progress",
    "protocol",  # prompts, parsing, scoring, chat rendering: training and every backend use them
    "targets",
    "config",
    "layout",
    "world",
    "model",
    "backends",
    "debate",
    "evolve",
    "controls",  # the trained controls: training (model) of an agent evolution picks (evolve)
    "evaluate",
    "report",
    "gpu_pool",
    "stage",
    "slurm",
    "cli",
]


def modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("evoswarm", *parts))] = p
    return out


def imports(path: Path, top_level_only: bool) -> set[str]:
    """The evoswarm modules `path` imports (all of them, or only those run when it is imported)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for n in nodes:
        if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] == "evoswarm":
            # `from evoswarm.x import y` may name a module y or a name in x: both are imports of x's unit
            found.add(n.module)
            found.update(f"{n.module}.{a.name}" for a in n.names)
        elif isinstance(n, ast.Import):
            found.update(a.name for a in n.names if a.name.split(".")[0] == "evoswarm")
    return found


def unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_unit_has_a_layer():
    assert {unit(m) for m in modules()} - {""} <= set(LAYERS)


def test_imports_point_down_the_layers():
    mods = modules()
    upward = []
    for m, path in mods.items():
        for target in imports(path, top_level_only=False):
            if target not in mods or unit(target) in ("", unit(m)):
                continue
            if LAYERS.index(unit(target)) > LAYERS.index(unit(m)):
                upward.append(f"{m} imports {target}")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_cycles_at_load_time():
    mods = modules()
    graph = {m: {t for t in imports(p, top_level_only=True) if t in mods and t != m} for m, p in mods.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, stack: list[str]) -> bool:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle.extend(stack[stack.index(t) :] + [t] if t in stack else [m, t])
                return True
            if t not in state and visit(t, stack + [t]):
                return True
        state[m] = 2
        return False

    for m in sorted(graph):
        if m not in state and visit(m, [m]):
            break
    assert not cycle, " -> ".join(cycle)
