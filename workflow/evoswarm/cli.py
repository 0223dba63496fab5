"""The `evoswarm` command: open-topic debates, the OpenAI-compatible server, merged-model export, the world.

evoswarm debate --topic "消費税減税は日本経済にプラスか？" --adapters A B C --rounds 3 [--engine langgraph]
evoswarm serve --base results/base --adapters results/seed0/gen0/adapters/* --port 8000
evoswarm export --base results/base --adapter results/seed0/gen2/adapters/s00 --out models/s00
evoswarm world --out data --seed 0   [--world testbed --out data/testbed]
evoswarm check-config config.yaml configs/smoke.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path


def _config(path: str) -> dict:
    from evoswarm.config import load_config

    return load_config(path)


def cmd_debate(a) -> None:
    from evoswarm.backends import check_reply_fits, make_backend
    from evoswarm.config import stage_config
    from evoswarm.debate.agents import load_agents
    from evoswarm.debate.loop import DebateSettings, judge_agent, run_debate
    from evoswarm.io import InputError

    if not a.topic.strip():
        raise InputError("--topic is empty")
    for flag, value, least in (("--rounds", a.rounds, 1), ("--max-new-tokens", a.max_new_tokens, 1)):
        if value < least:
            raise InputError(f"{flag} must be at least {least}, not {value}")
    if not a.temperature >= 0:  # NaN too
        raise InputError(f"--temperature must be at least 0, not {a.temperature}")
    if a.engine == "langgraph":
        try:
            from evoswarm.debate.graph import stream_debate
        except ModuleNotFoundError as e:
            if not (e.name or "").startswith("langgraph"):
                raise
            raise InputError("--engine langgraph needs LangGraph: pip install 'evoswarm[langgraph]'") from None
    config = stage_config(_config(a.config), "debate")
    dcfg = {
        **config["debate"],
        "answer_mode": "generate",
        "rounds": a.rounds,
        "language": a.lang,
        "max_new_tokens": a.max_new_tokens,
        "temperature": a.temperature,
        "judge": True,
    }
    backend = make_backend(a.backend or dcfg["backend"], a.base, config)
    check_reply_fits(backend, a.max_new_tokens, "--max-new-tokens")
    _check_topic_fits(a.topic, backend, a.max_new_tokens)
    agents = load_agents(backend, a.base, a.adapters)
    s = dataclasses.replace(DebateSettings.from_config(dcfg, "exact", config["seed"]), answer_mode="generate")
    item = {"id": "topic", "question": a.topic, "answer": "", "choices": None}
    print(f"# {a.topic}\n", flush=True)
    if a.engine == "langgraph":  # each turn printed as soon as it is produced
        for kind, row in stream_debate(backend, agents, item, s, judge=judge_agent(dcfg)):
            if kind == "turn":
                _print_turn(row)
            else:
                v = row
    else:
        transcripts, votes = run_debate(backend, agents, [item], s, judge=judge_agent(dcfg))
        for t in transcripts:
            _print_turn(t)
        v = votes[0]
    print(f"\nvote: {v['vote_answer']}  scores {v['vote_scores']}")
    print(f"judge: {v['judge']['answer']} -- {v['judge']['summary']}")


def _print_turn(t: dict) -> None:
    print(
        f"[round {t['round']}] {t['agent']}: {t['answer']} (confidence {t['confidence']:.2f})"
        + (f" -- {t['summary']}" if t["summary"] else "")
        + ("" if t["parsed"] else "  [unparsed]"),
        flush=True,
    )


def _check_topic_fits(topic: str, backend, max_new_tokens: int) -> None:
    """A topic may fill half of what the context leaves after the reply: every turn's prompt holds it
    beside the system prompt, the rules and the other agents' summaries."""
    from evoswarm.io import InputError

    context = getattr(backend, "max_length", 0)
    if not context:  # unknown before the first request (vllm, openai): prompts are then cut with a notice
        return
    limit = (context - max_new_tokens) // 2
    n = len(backend.tok(topic, add_special_tokens=False)["input_ids"])
    if n > limit:
        raise InputError(
            f"--topic is {len(topic)} characters ({n} tokens); at most {limit} tokens fit "
            f"(half of the model's {context}-token context after --max-new-tokens {max_new_tokens})"
        )


def cmd_serve(a) -> None:
    from evoswarm.backends.hf import HFBackend
    from evoswarm.backends.server import RESERVED_NAMES, adapter_name_problem, make_server
    from evoswarm.debate.agents import load_agents
    from evoswarm.io import InputError
    from evoswarm.model.base import read_manifest

    def check_names(base_name: str) -> None:  # an adapter is served under its folder's name
        for d in a.adapters:
            problem = adapter_name_problem(Path(d).name, base_name)
            if problem:
                raise InputError(f"{d}: {problem} (rename the folder)")

    check_names(RESERVED_NAMES[0])  # before the config, the base or any model is read
    config = _config(a.config)
    # The base's name is its weights folder, as `vllm serve <folder>` names it.
    base_name = read_manifest(a.base)["path"]
    check_names(base_name)
    backend = HFBackend.from_base(a.base, config)
    load_agents(backend, a.base, a.adapters)
    allowed = a.allow_dir or sorted({str(Path(p).resolve().parent) for p in a.adapters}) or [config["results"]]
    server = make_server(
        backend,
        a.base,
        allowed,
        a.host,
        a.port,
        base_name=base_name,
        max_queue=a.max_queue,
        backlog=a.backlog,
        max_prompts=a.max_prompts,
    )
    host, port = server.server_address[:2]
    print(
        f"serving base + {len(backend.adapters)} adapters on http://{host}:{port}/v1 (adapters from {allowed})",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def cmd_export(a) -> None:
    from evoswarm.model.export import export_merged

    lineage = export_merged(a.base, a.adapter, a.out)
    print(f"{a.out}: {Path(a.adapter).name} (generation {lineage.get('generation')}) merged into {a.base}")


def cmd_world(a) -> None:
    from evoswarm.io import InputError
    from evoswarm.world.generator import WORLDS, generate, write

    if a.world not in WORLDS:
        raise InputError(f"--world {a.world!r}: one of {', '.join(WORLDS)}")
    write(generate(a.seed, world=WORLDS[a.world]), Path(a.out))
    print(f"wrote the {a.world} world (seed {a.seed}) under {a.out}")


def cmd_check_config(a) -> None:
    """Snakemake reads --configfile files before the workflow runs and reports a YAML syntax error there
    without file or line; this reads and merges them as Snakemake does, with errors naming file and line."""
    from snakemake.utils import update_config

    from evoswarm.config import key_locator, read_yaml_config, validate

    merged: dict = {}
    for f in a.files:
        update_config(merged, read_yaml_config(f))
    validate(merged, " + ".join(a.files), key_locator(a.files))
    print(f"{' + '.join(a.files)}: valid")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="evoswarm", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("debate", help="agents debate an open topic; a judge concludes")
    d.add_argument("--topic", required=True)
    d.add_argument("--adapters", nargs="+", required=True)
    d.add_argument("--rounds", type=int, default=3)
    d.add_argument("--base", default="results/base")
    d.add_argument("--config", default="config.yaml")
    d.add_argument("--backend", choices=["hf", "vllm", "openai"])
    d.add_argument("--lang", choices=["ja", "en"], default="ja")
    d.add_argument("--max-new-tokens", type=int, default=96)
    d.add_argument("--temperature", type=float, default=0.0)
    d.add_argument(
        "--engine",
        choices=["builtin", "langgraph"],
        default="builtin",
        help="langgraph: the same protocol as a LangGraph graph, each turn streamed (extra: evoswarm[langgraph])",
    )
    d.set_defaults(func=cmd_debate)
    s = sub.add_parser("serve", help="OpenAI-compatible server over the hf backend")
    s.add_argument("--base", default="results/base")
    s.add_argument("--adapters", nargs="*", default=[])
    s.add_argument("--config", default="config.yaml")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--max-queue", type=int, default=16, help="requests queued at once; more get a 429")
    s.add_argument("--backlog", type=int, default=128, help="connections the socket holds before they are accepted")
    s.add_argument("--max-prompts", type=int, default=256, help="prompts one /v1/completions request may hold")
    s.add_argument("--allow-dir", action="append", help="folders adapters may be loaded from (repeatable)")
    s.set_defaults(func=cmd_serve)
    e = sub.add_parser("export", help="merge one adapter into the base: a standalone transformers model")
    e.add_argument("--base", default="results/base", help="the run's base folder (build_base's)")
    e.add_argument("--adapter", required=True, help="an adapter folder, e.g. results/seed0/gen2/adapters/s00")
    e.add_argument("--out", required=True, help="the model folder to write")
    e.set_defaults(func=cmd_export)
    w = sub.add_parser("world", help="regenerate the embedded task world")
    w.add_argument("--out", default="data")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--world", default="default", help="default (data/) or testbed (--out data/testbed)")
    w.set_defaults(func=cmd_world)
    c = sub.add_parser("check-config", help="validate config files merged in order, as Snakemake merges them")
    c.add_argument("files", nargs="+", help="e.g. config.yaml configs/smoke.yaml (a later file wins)")
    c.set_defaults(func=cmd_check_config)
    a = ap.parse_args(argv)
    from evoswarm.io import InputError

    try:
        a.func(a)
    except InputError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
