import re

import pytest
import yaml
from conftest import REPO, run_snakemake
from evoswarm.config import (
    derive_seed,
    evaluation_targets,
    generation_eval_targets,
    load_config,
    members,
    stage_config,
    validate,
)
from evoswarm.io import InputError
from evoswarm.targets import SHARED, Target
from hypothesis import given, settings
from hypothesis import strategies as st

CONFIGS = [
    "config.yaml",
    "configs/smoke.yaml",
    "configs/freetext.yaml",
    "configs/testbed.yaml",
    "configs/qwen3-4b.yaml",
    "configs/qwen3-4b-vllm-server.yaml",
]


def base_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_defaults_are_filled():
    c = validate(base_config())
    assert c["training"]["target_modules"][0] == "q_proj"
    assert c["debate"]["openai"]["base_url"].startswith("http://127.0.0.1")
    assert c["base"]["trust_remote_code"] is False


@pytest.mark.parametrize(
    "patch, key",
    [
        ({"populaton": 3}, "populaton"),
        ({"training": {"r": "eight"}}, "training.r"),
        ({"debate": {"backend": "tgi"}}, "debate.backend"),
        ({"fitness": {"weights": {"task": -1}}}, "fitness.weights.task"),
        ({"personas": [{"name": "a.b", "system": "", "data": "x"}]}, "personas.0.name"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [0, 0]}, "seeds"),
        ({"seeds": [-1]}, "seeds.0"),
        ({"seed": 1}, "'seed' is now 'seeds'"),
    ],
)
def test_bad_values_name_the_key(patch, key):
    c = base_config()
    c.update(patch)
    with pytest.raises(InputError, match=key.replace(".", r"\.")):
        validate(c)


def test_cross_key_checks():
    c = base_config()
    c["evolution"] = {"elites": 3}
    with pytest.raises(InputError, match="evolution.elites"):
        validate(c)
    c = base_config()
    c["fitness"]["weights"] = {"task": 0, "cooperation": 0, "novelty": 0}
    with pytest.raises(InputError, match="sum to zero"):
        validate(c)


@pytest.mark.parametrize(
    "evolution, personas_r, message",
    [
        (
            {"blend": {"scale_low": 1.2, "scale_high": 0.8}},
            None,
            "'evolution.blend.scale_low' is above 'evolution.blend.scale_high'",
        ),
        ({"blend": {"scale_high": 2.5}}, None, "evolution.blend.scale_high"),
        ({"blend": {"mode": "dare"}}, None, "evolution.blend.mode"),
        ({"child_rank": "min"}, None, "evolution.child_rank"),
        ({"child_rank": 0}, None, "evolution.child_rank"),
        ({"crossover": "cat"}, None, "evolution.child_rank: cat keeps every component; use 'sum'"),
        ({"crossover": "cat", "child_rank": 8}, None, "evolution.child_rank: cat keeps every component; use 'sum'"),
        ({"crossover": "naive_ab", "child_rank": "sum"}, None, "evolution.child_rank: naive_ab keeps"),
        ({"child_rank": 17}, None, "evolution.child_rank: 17 is above evolution.parents"),  # 2 parents × r 8
        ({"child_rank": 25, "parents": 3}, None, "evolution.child_rank: 25 is above"),
        ({"child_rank": 21}, 10, "evolution.child_rank: 21 is above"),  # a persona's r override counts
    ],
)
def test_evolution_checks_name_the_key(evolution, personas_r, message):
    c = base_config()
    c["evolution"] = evolution
    c["training"]["r"] = 8
    if personas_r:
        c["personas"][0]["training"] = {"r": personas_r}
    with pytest.raises(InputError, match=re.escape(message)):
        validate(c)


def test_evolution_choices_that_fit():
    c = base_config()
    c["training"]["r"] = 8
    c["personas"][0]["training"] = {"r": 10}
    for evolution in [
        {"crossover": "cat", "child_rank": "sum"},
        {"crossover": "naive_ab"},
        {"crossover": "svd", "child_rank": 20},
        {"crossover": "svd", "child_rank": "sum"},
        {"blend": {"mode": "task_arithmetic", "scale_low": 0.9, "scale_high": 1.3}},
    ]:
        assert validate({**c, "evolution": evolution})["evolution"]["child_rank"] == evolution.get("child_rank", "max")


def test_each_stage_gets_its_replicate_seed():
    c = validate({**base_config(), "seeds": [3, 1]})
    assert stage_config(c, "debate")["seed"] == 3  # the first seed: the shared base's and the default
    assert stage_config(c, "debate", 1)["seed"] == 1
    assert stage_config(c, "report")["seeds"] == [3, 1]
    # Snakemake's --config reads list items as strings
    assert validate({**base_config(), "seeds": ["0", "2"]})["seeds"] == [0, 2]


def test_seeds_derive_from_run_generation_slot():
    assert derive_seed(0, 1, "s01") == derive_seed(0, 1, "s01")
    assert len({derive_seed(0, 1, "s01"), derive_seed(0, 2, "s01"), derive_seed(1, 1, "s01")}) == 3


def test_members():
    c = validate({**base_config(), "population": 5})
    assert members(c, 0) == ["critic", "implementer", "ideator", "critic-1", "implementer-1"]
    assert members(c, 2) == ["s00", "s01", "s02", "s03", "s04"]


@pytest.mark.parametrize("name", ["critic-best", "best"])
def test_a_persona_name_read_as_a_best_target_is_refused(name):
    """gen0-<name> would be parsed as the target gen<g>-best: the persona could never be evaluated."""
    c = base_config()
    c["personas"][1]["name"] = name
    with pytest.raises(InputError, match=rf"personas\[1\]\.name '{name}'.*gen<g>-best"):
        validate(c)


def test_a_persona_named_like_another_personas_copy_is_refused():
    """Population 4 over [critic, critic-1, ideator] copies critic as slot 'critic-1', the second persona's name."""
    c = base_config()
    c["personas"][1]["name"] = "critic-1"
    c["population"] = 4
    with pytest.raises(InputError, match=r"personas\[1\]\.name 'critic-1' is also the slot of persona critic's copy"):
        validate(c)
    c["population"] = 3  # no copies, no clash
    assert members(validate(c), 0) == ["critic", "critic-1", "ideator"]


def test_missing_config_file():
    with pytest.raises(InputError, match="not found"):
        load_config("nope.yaml")


@pytest.mark.parametrize("cfg", CONFIGS)
def test_dry_run_lists_every_generation(cfg, tmp_path):
    c = load_config(REPO / cfg)
    out = run_snakemake(tmp_path, "-n", "--quiet", "rules", config=REPO / cfg).stdout
    counts = {
        line.split()[0]: int(line.split()[1])
        for line in out.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    }
    g, p = c["generations"], c["population"]
    assert counts["debate"] == g + 1 and counts["fitness"] == g + 1 and counts["select"] == g
    assert counts["breed"] == g * p and counts["train_persona"] == p


def test_dry_run_lists_every_seed_and_shares_the_base(tmp_path):
    c = load_config(REPO / "configs/smoke.yaml")
    out = run_snakemake(tmp_path, "-n", "--quiet", "rules", "--config", "seeds=[0,1,2]").stdout
    counts = {
        line.split()[0]: int(line.split()[1])
        for line in out.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    }
    g, p = c["generations"], c["population"]
    assert counts["build_base"] == 1 and counts["evaluate_shared"] == len(SHARED)
    assert counts["train_persona"] == 3 * p and counts["debate"] == 3 * (g + 1) and counts["breed"] == 3 * g * p
    # one evaluation job per generation and seed, and gen0-best's copy of its agent's result
    assert counts["evaluate_gen0"] == 3 and counts["evaluate_generation"] == 3 * g and counts["report"] == 1
    assert counts["evaluate_gen0_best"] == 3


@pytest.mark.parametrize("seeds", ["[]", "[0,0]", "[-1]"])
def test_bad_seeds_on_the_command_line_name_the_key(seeds, tmp_path):
    r = run_snakemake(tmp_path, "-n", "--config", f"seeds={seeds}", check=False)
    assert r.returncode != 0 and "--config: invalid value at 'seeds" in r.stderr + r.stdout


def test_invalid_config_fails_fast_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "configs/smoke.yaml").read_text() + "\ngenerashuns: 3\n")
    r = run_snakemake(tmp_path / "w", "-n", config=bad, check=False)
    assert r.returncode != 0 and "generashuns" in r.stderr + r.stdout


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seeds: [0]\npopulation: 3\ntraining: {r: 8\ngenerations: 1\n")
    with pytest.raises(InputError, match=re.escape(f"{bad}:4: invalid YAML (expected ',' or '}}', but got ':')")):
        load_config(bad)


def error_lines(run) -> list[str]:
    """What Snakemake printed, less its note that the command-line config extends config.yaml."""
    out = (run.stdout + run.stderr).splitlines()
    return [line for line in out if line and "is extended by additional config" not in line]


def test_a_schema_error_under_snakemake_is_one_line_naming_the_config_file_and_line(tmp_path):
    """Not rules/common.smk, which only runs the check: the file and line that set the bad key."""
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "configs/smoke.yaml").read_text() + "\nbase:\n  device: cpu\n  dtyp: float32\n")
    line = len((REPO / "configs/smoke.yaml").read_text().splitlines()) + 4
    r = run_snakemake(tmp_path / "w", "-n", config=bad, check=False)
    assert r.returncode == 1 and error_lines(r) == [
        f"error: {bad}:{line}: invalid value at 'base': Additional properties are not allowed ('dtyp' was unexpected)"
    ]


def test_a_yaml_syntax_error_in_the_default_config_names_it_under_snakemake(tmp_path):
    """Snakemake's own message names neither file nor line. (It reads --configfile files before the
    workflow runs, so a syntax error there still gets Snakemake's message.)"""
    work = tmp_path / "w"
    work.mkdir()
    text = (REPO / "config.yaml").read_text()
    (work / "config.yaml").write_text(text + "\nevaluation: limit: 9\n")
    r = run_snakemake(work, "-n", check=False)
    line = len(text.splitlines()) + 2
    assert r.returncode == 1
    message = "invalid YAML (mapping values are not allowed here)"
    assert error_lines(r) == [f"error: {work / 'config.yaml'}:{line}: {message}"]


def test_check_config_names_the_file_and_line_snakemake_cannot(tmp_path):
    from evoswarm.cli import main

    broken, override = tmp_path / "broken.yaml", tmp_path / "override.yaml"
    broken.write_text("population: 4\ndebate: rounds: 2\n")
    override.write_text("debate:\n  rounds: two\n")
    with pytest.raises(SystemExit, match=re.escape(f"error: {broken}:2: invalid YAML (mapping values are not allowed")):
        main(["check-config", str(REPO / "configs/smoke.yaml"), str(broken)])
    with pytest.raises(SystemExit, match=re.escape(f"error: {override}:2: invalid value at 'debate.rounds'")):
        main(["check-config", str(REPO / "configs/smoke.yaml"), str(override)])


def test_workflow_lints_clean(tmp_path):
    r = run_snakemake(tmp_path, "--lint", check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_code_is_ruff_and_snakefmt_clean():
    import subprocess
    import sys

    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "workflow", "tests", "bench"], cwd=REPO, capture_output=True, text=True
    )
    assert ruff.returncode == 0, ruff.stdout
    fmt = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"], cwd=REPO, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stderr


@pytest.mark.parametrize("path", CONFIGS)
def test_every_target_name_reads_back_as_its_target(path):
    """The rules, the evaluate stage and the report meet through target names (eval/<name>.json): each name
    parses back to the target it was made from, names only it, and the pattern of the rule of generations
    >= 1 gives each generation's own job."""
    c = load_config(REPO / path)
    names = evaluation_targets(c)
    assert [str(Target.parse(n)) for n in names] == names and len(set(names)) == len(names)
    pattern = generation_eval_targets(c, "{gen}")
    for g in range(1, c["generations"] + 1):
        assert [p.format(gen=g) for p in pattern] == generation_eval_targets(c, g)


@given(name=st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,8}(-best)?", fullmatch=True))
@settings(max_examples=60, deadline=None)
def test_every_persona_name_the_config_accepts_reads_back(name):
    c = base_config()
    c["personas"][1]["name"] = name
    try:
        config = validate(c)
    except InputError:
        return
    assert all(str(Target.parse(n)) == n for n in evaluation_targets(config))
