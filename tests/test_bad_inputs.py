"""Bad inputs found on the smoke config: each fails before anything runs, with one line naming the file
(and line), the config key or the command-line flag, instead of a traceback or a silent change of mode."""

import json
import os
import re

import pytest
import yaml
from conftest import REPO, run_snakemake
from evoswarm.io import InputError
from evoswarm.world.chats import load_chats
from evoswarm.world.items import load_items

ITEM = {"id": "q1", "question": "2+2?", "answer": "4", "choices": ["3", "4"]}


def base_config():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


# 1. An item without choices under the `choice` scorer or loglik mode.


@pytest.mark.parametrize("scorer, mode", [("choice", "generate"), ("exact", "loglik"), ("choice", "loglik")])
def test_an_item_without_choices_is_refused_where_the_scorer_or_answer_mode_needs_them(tmp_path, scorer, mode):
    no_choices = {k: v for k, v in ITEM.items() if k != "choices"} | {"id": "q2"}
    p = _write(tmp_path / "dev.jsonl", [ITEM, no_choices])
    with pytest.raises(InputError, match=r"^\S*dev\.jsonl:2: 'choices' .*(tasks\.scorer|debate\.answer_mode)"):
        load_items(p, scorer=scorer, answer_mode=mode)


def test_an_item_without_choices_is_fine_for_a_generated_exact_debate(tmp_path):
    no_choices = {k: v for k, v in ITEM.items() if k != "choices"}
    assert load_items(_write(tmp_path / "dev.jsonl", [no_choices]), scorer="exact", answer_mode="generate")


def test_an_answer_outside_its_choices_names_file_and_line(tmp_path):
    p = _write(tmp_path / "dev.jsonl", [ITEM, ITEM | {"id": "q2", "answer": "5"}])
    with pytest.raises(InputError, match=r"dev\.jsonl:2: 'choices'"):
        load_items(p, scorer="choice", answer_mode="loglik")


def test_a_loglik_debate_never_falls_back_to_generating_turns():
    """The answer mode is the config's: items that reach a loglik debate without choices are an error,
    not a silent switch to generate mode."""
    from evoswarm.debate.loop import DebateSettings, ask

    class NoCalls:
        def __getattr__(self, name):
            raise AssertionError(f"backend.{name} called")

    item = {k: v for k, v in ITEM.items() if k != "choices"}
    with pytest.raises(ValueError, match="debate.answer_mode loglik.*q1"):
        ask(NoCalls(), [(None, [{"role": "user", "content": "q"}], item)], DebateSettings(), 0)


# 2. A duplicate task id.


def test_a_duplicate_task_id_names_the_file_and_both_lines(tmp_path):
    p = _write(tmp_path / "dev.jsonl", [ITEM, ITEM | {"id": "q2"}, ITEM | {"id": "q3"}, ITEM | {"id": "q2"}])
    with pytest.raises(InputError, match=r"dev\.jsonl:4: duplicate id 'q2' \(first on line 2\)"):
        load_items(p)


def test_a_duplicate_task_id_beyond_the_limit_is_refused_too(tmp_path):
    p = _write(tmp_path / "dev.jsonl", [ITEM, ITEM | {"id": "q2"}, ITEM])
    with pytest.raises(InputError, match=r"dev\.jsonl:3: duplicate id 'q1' \(first on line 1\)"):
        load_items(p, limit=1)


# 2b. Held-out splits that share a (question, answer) pair, under world.disjoint_splits.


def test_task_splits_sharing_a_question_answer_pair_stop_snakemake_in_one_line(tmp_path):
    """The default world's category items share such pairs (train and dev both ask "Pick the vehicle." with
    the answer train): refused at start-up when the config asks for disjoint splits, as configs/testbed.yaml does."""
    cfg = tmp_path / "disjoint.yaml"
    cfg.write_text((REPO / "configs/smoke.yaml").read_text() + "\nworld: {disjoint_splits: true}\n")
    r = run_snakemake(tmp_path / "w", "-n", config=cfg, check=False)
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln and "is extended by additional config" not in ln]
    assert r.returncode == 1 and len(lines) == 1, lines
    assert re.fullmatch(
        r"error: data/tasks/\w+\.jsonl \(id \S+\) and data/tasks/\w+\.jsonl \(id \S+\) share the question .* "
        r"\(world\.disjoint_splits\)",
        lines[0],
    ), lines[0]


# 3. Non-string roles and contents in a persona chat.


@pytest.mark.parametrize("role", [["user"], {"r": "user"}, 1, None, True])
def test_a_persona_role_that_is_not_a_string_names_file_and_line(tmp_path, role):
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"messages": [{"role": role, "content": "hi"}, {"role": "assistant", "content": "yo"}]},
    ]
    with pytest.raises(InputError, match=r"^\S*p\.jsonl:2: .*role"):
        load_chats(_write(tmp_path / "p.jsonl", rows))


@pytest.mark.parametrize("content", [["hi"], {"t": "hi"}, 1, None])
def test_a_persona_content_that_is_not_a_string_names_file_and_line(tmp_path, content):
    rows = [{"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": "yo"}]}]
    with pytest.raises(InputError, match=r"^\S*p\.jsonl:1: .*content"):
        load_chats(_write(tmp_path / "p.jsonl", rows))


@pytest.mark.parametrize("messages", [[["user", "hi"]], "hi", [None], {"role": "user"}])
def test_persona_messages_of_the_wrong_shape_name_file_and_line(tmp_path, messages):
    with pytest.raises(InputError, match=r"^\S*p\.jsonl:1: "):
        load_chats(_write(tmp_path / "p.jsonl", [{"messages": messages}]))


def test_training_on_a_persona_role_list_stops_with_the_readers_line(tmp_path, smoke_config):
    """The chats are read before any model loads: the reader's line, not a TypeError in training."""
    from evoswarm.model.training import train_lora

    rows = [{"messages": [{"role": ["user"], "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
    data = _write(tmp_path / "p.jsonl", rows)
    with pytest.raises(InputError, match=r"^\S*p\.jsonl:1: .*role"):
        train_lora(str(tmp_path / "no-base"), data, None, smoke_config["training"], smoke_config, 0, tmp_path / "o")


# 4. Seeds that are not strict integers.


@pytest.mark.parametrize("seeds", [[0, 1.0], [True], [0, False], [2.5]])
def test_seeds_must_be_strict_integers(seeds):
    from evoswarm.config import validate

    c = base_config()
    c["seeds"] = seeds
    with pytest.raises(InputError, match=r"invalid value at 'seeds\.\d'"):
        validate(c)


def test_other_integer_keys_refuse_floats_and_bools():
    from evoswarm.config import validate

    for key, value in [("population", 3.0), ("generations", True)]:
        c = base_config()
        c[key] = value
        with pytest.raises(InputError, match=f"invalid value at '{key}'"):
            validate(c)


def test_numbers_must_be_finite():
    """NaN fails no bound (every comparison with it is false), so it passed every minimum and maximum."""
    from evoswarm.config import validate

    for path, value in [(("debate", "top_p"), float("nan")), (("fitness", "weights", "task"), float("inf"))]:
        c = base_config()
        node = c
        for k in path[:-1]:
            node = node.setdefault(k, {})
        node[path[-1]] = value
        with pytest.raises(InputError, match=f"invalid value at '{'.'.join(path)}'"):
            validate(c)


def test_check_config_refuses_a_float_seed_naming_file_and_line(tmp_path):
    from evoswarm.cli import main

    extra = tmp_path / "seeds.yaml"
    extra.write_text("seeds: [0, 1.0]\n")
    with pytest.raises(SystemExit) as e:
        main(["check-config", str(REPO / "configs/smoke.yaml"), str(extra)])
    assert str(e.value.code).endswith("seeds.yaml:1: invalid value at 'seeds.1': 1.0 is not of type 'integer'")


# 5. Debate rounds and token limits.


def _cli_debate(tiny_base, *flags):
    from evoswarm.cli import main

    config = str(REPO / "configs/smoke.yaml")
    main(["debate", "--topic", "x", "--adapters", "a/s01", "--base", str(tiny_base), "--config", config, *flags])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--rounds", "0"], "--rounds must be at least 1, not 0"),
        (["--rounds", "-2"], "--rounds must be at least 1, not -2"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be at least 1, not 0"),
        (
            ["--max-new-tokens", "1000000000"],
            "--max-new-tokens 1000000000 leaves no room for a prompt in the model's 384-token",
        ),
        (["--max-new-tokens", "384"], "--max-new-tokens 384 leaves no room"),
        (["--temperature", "-1"], "--temperature must be at least 0, not -1.0"),
    ],
)
def test_debate_flags_out_of_range_are_one_line_naming_the_flag(tiny_base, flags, message):
    with pytest.raises(SystemExit) as e:
        _cli_debate(tiny_base, *flags)
    assert str(e.value.code).startswith(f"error: {message}") and "\n" not in str(e.value.code)


def test_a_configured_max_new_tokens_beyond_the_context_names_the_key(tmp_path, tiny_base, smoke_config):
    import copy

    from evoswarm.debate.generation import debate_generation

    config = copy.deepcopy(smoke_config)
    config["debate"]["max_new_tokens"] = 10**9
    out = tmp_path / "t.jsonl", tmp_path / "v.jsonl"
    with pytest.raises(InputError, match=r"^debate\.max_new_tokens 1000000000 leaves no room .* 384-token context"):
        debate_generation(config, str(tiny_base), [], str(REPO / "data/tasks/dev.jsonl"), *map(str, out))
    assert not any(p.exists() for p in out)


# 6. Two adapter folders of one name.


SAME_NAME = [["gen1/adapters/s01", "gen2/adapters/s01"], ["gen1/adapters/s01", "gen1/adapters/s01"]]


@pytest.mark.parametrize("dirs", SAME_NAME)
def test_two_agents_of_one_name_are_refused_naming_both_folders(tmp_path, dirs):
    from evoswarm.debate.agents import load_agents

    class NoCalls:
        def __getattr__(self, name):
            raise AssertionError(f"backend.{name} called")

    with pytest.raises(InputError, match=f"^{dirs[1]}: .*'s01'.*{dirs[0]}"):
        load_agents(NoCalls(), str(tmp_path / "base"), ["other/s00", *dirs])


# 7. Output folders and files take the process's umask.


@pytest.mark.parametrize("umask, folder, file", [(0o022, 0o755, 0o644), (0o002, 0o775, 0o664), (0o077, 0o700, 0o600)])
def test_outputs_take_the_process_umask(tmp_path, umask, folder, file):
    import stat

    from evoswarm.io import atomic_path, write_text

    old = os.umask(umask)
    try:
        write_text(tmp_path / "results" / "votes.jsonl", "whole\n")
        with atomic_path(tmp_path / "results" / "adapter", is_dir=True) as tmp:
            tmp.mkdir(exist_ok=True)
            (tmp / "weights").write_text("w")
            (tmp / "sub").mkdir()
    finally:
        os.umask(old)

    def mode(p):
        return stat.S_IMODE((tmp_path / "results" / p).stat().st_mode)

    assert (mode("."), mode("adapter"), mode("adapter/sub")) == (folder,) * 3
    assert (mode("votes.jsonl"), mode("adapter/weights")) == (file,) * 2
    assert not list((tmp_path / "results").glob(".tmp-*"))


# 8. Reserved and empty adapter names in `evoswarm serve`.


@pytest.mark.parametrize(
    "folder, message",
    [
        ("gen0/adapters/base", "the adapter name 'base' is reserved for the base model"),
        ("gen0/adapters/__base__", "the adapter name '__base__' is reserved for the base model"),
        (".", "an adapter needs a non-empty name"),
    ],
)
def test_serve_refuses_reserved_and_empty_adapter_names_from_the_command_line(tmp_path, folder, message):
    from evoswarm.cli import main

    args = ["serve", "--base", str(tmp_path / "no-base"), "--config", str(REPO / "configs/smoke.yaml")]
    with pytest.raises(SystemExit) as e:
        main([*args, "--adapters", "gen0/adapters/s00", folder, "--port", "0"])
    assert str(e.value.code) == f"error: {folder}: {message} (rename the folder)"


@pytest.mark.parametrize("name", ["", " ", "base", "__base__", ["x"], 3, None])
def test_serve_state_refuses_reserved_empty_and_non_string_names(tmp_path, name):
    from evoswarm.backends.server import ServeState

    state = ServeState.__new__(ServeState)  # no model: the name is refused before anything is read
    state.base_name, state.allowed, state.backend = "/models/base", [], None
    with pytest.raises(ValueError, match="lora_name|reserved"):
        state.load(name, str(tmp_path))
