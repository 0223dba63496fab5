import dataclasses
import json
import re
from pathlib import Path

import pytest
from evoswarm.io import InputError
from evoswarm.world.generator import (
    CATEGORY_NAMES_JA,
    DEFAULT,
    FREETEXT_SKILLS,
    PERSONAS,
    SKILLS,
    TESTBED,
    content_key,
    freetext_content_key,
    generate,
    write,
)
from evoswarm.world.items import check_disjoint_splits

REPO = Path(__file__).resolve().parent.parent
# Where each world's files are committed.
ROOTS = {"default": "data", "testbed": "data/testbed"}


def _read(rel: str, root: str = "data") -> list:
    text = (REPO / root / rel).read_text(encoding="utf-8").splitlines()
    return [json.loads(t) for t in text] if rel.endswith(".jsonl") else text


def _question(q: str, choices: list[str]) -> tuple:
    """A question as a model sees it, whatever the order of its choices."""
    return (" ".join(q.split()).lower(), tuple(sorted(choices)))


def _asked(chat: dict) -> set[tuple]:
    """Every (question, choices) a chat's user turns ask."""
    out = set()
    for m in chat["messages"]:
        found = re.search(r"^Q: (.*)\nChoices: (.*)$", m["content"], re.M) if m["role"] == "user" else None
        if found:
            out.add(_question(found[1], found[2].split(" | ")))
    return out


def _corpus_keys(lines: list[str]) -> set[tuple]:
    """The task problems a prose line states: a sum (either language) or any 4-term window of a progression."""
    keys = set()
    for ln in lines:
        if m := re.fullmatch(r"(\d+) (?:plus|と) (\d+) (?:makes|で) \d+[.。]", ln):
            keys.add(("arithmetic", *sorted((int(m[1]), int(m[2])))))
        nums = [int(n) for n in re.findall(r"\d+", ln.split(":", 1)[-1])] if ":" in ln else []
        for i in range(len(nums) - 3):
            step = nums[i + 1] - nums[i]
            if nums[i : i + 4] == [nums[i] + j * step for j in range(4)]:
                keys.add(("sequence", nums[i], step))
    return keys


def test_generator_is_deterministic_and_seeded():
    a, b, c = generate(0), generate(0), generate(1)
    assert a == b
    assert a["tasks/dev.jsonl"] != c["tasks/dev.jsonl"]


def test_committed_world_is_the_generators_output():
    """data/ must be regenerated (python -m evoswarm.world.generator --out data) whenever the generator changes."""
    for rel, rows in generate(0).items():
        assert _read(rel) == rows, rel


@pytest.mark.parametrize("held", ["dev", "test"])
def test_held_out_splits_share_no_content_with_anything_trained_on(held):
    """No dev/test problem (content key, or question with its choices in any template) is in train, in
    the persona SFT data, or in the base's pretraining corpus and format chats; dev and test are disjoint."""
    items = _read(f"tasks/{held}.jsonl")
    keys = [content_key(it) for it in items]
    questions = {_question(it["question"], it["choices"]) for it in items}
    assert len(set(keys)) == len(keys)  # one problem per held-out item
    train = _read("tasks/train.jsonl")
    train_questions = {_question(it["question"], it["choices"]) for it in train}
    assert not set(keys) & {content_key(it) for it in train}
    assert not questions & train_questions
    assert not {(_question(it["question"], it["choices"]), it["answer"]) for it in items} & {
        (_question(it["question"], it["choices"]), it["answer"]) for it in train
    }
    other = "test" if held == "dev" else "dev"
    assert not set(keys) & {content_key(it) for it in _read(f"tasks/{other}.jsonl")}
    # Persona SFT and the base's chats ask only train questions (or the echo skill), so they hold no held-out one.
    chats = [c for p in PERSONAS for c in _read(f"personas/{p}.jsonl")] + _read("corpus/format.jsonl")
    asked = set().union(*(_asked(c) for c in chats))
    assert asked and not asked & questions
    assert {q for p in PERSONAS for c in _read(f"personas/{p}.jsonl") for q in _asked(c)} <= train_questions
    corpus = _read("corpus/corpus.txt")
    stated = _corpus_keys(corpus)
    assert stated and not stated & set(keys)
    assert not any(it["question"] in ln for it in items for ln in corpus)


def test_corpus_check_would_catch_a_leak():
    """The corpus scan really reads sums and progression windows (so the test above could fail)."""
    assert _corpus_keys(["24 plus 2 makes 26.", "Counting by 5: 61, 66, 71, 76, 81, 86."]) == {
        ("arithmetic", 2, 24),
        ("sequence", 61, 5),
        ("sequence", 66, 5),
        ("sequence", 71, 5),
    }


def test_splits_that_cannot_be_held_out_are_refused():
    with pytest.raises(InputError, match="arithmetic"):
        generate(0, sizes={"test": 300, "dev": 200, "train": 10})


def test_items_answer_with_values_in_both_languages():
    world = generate(0)
    items = world["tasks/train.jsonl"]
    assert {it["skill"] for it in items} == set(SKILLS)
    assert {it["lang"] for it in items} == {"en", "ja"}
    for it in items:
        assert it["answer"] in it["choices"] and len(set(it["choices"])) == 4
        assert not it["answer"].isalpha() or len(it["answer"]) > 1  # never a letter


def test_persona_sets_specialise_and_include_later_rounds():
    world = generate(0)
    for name, spec in PERSONAS.items():
        chats = world[f"personas/{name}.jsonl"]
        users = [c["messages"][1]["content"] for c in chats]
        assert any("Others:" in u for u in users) and any("Others:" not in u for u in users)
        for c in chats:
            turn = json.loads(c["messages"][-1]["content"])
            assert set(turn) == {"answer", "confidence", "summary"}
        skills = {it["skill"] for it in world["tasks/train.jsonl"]}
        assert spec["skill"] in skills


@pytest.mark.parametrize("held", ["dev", "test"])
def test_free_text_held_out_problems_are_not_trained_on(held):
    """The free-text family: no dev/test problem (its words, whatever the template) in train or in the
    persona SFT data; dev and test disjoint; no choices; every gold answer has words to score."""
    from evoswarm.protocol.scoring import squad_normalize

    items = _read(f"tasks/freetext/{held}.jsonl")
    keys = [freetext_content_key(it) for it in items]
    assert len(set(keys)) == len(keys) and {it["skill"] for it in items} == set(FREETEXT_SKILLS)
    train = _read("tasks/freetext/train.jsonl")
    assert not set(keys) & {freetext_content_key(it) for it in train}
    other = "test" if held == "dev" else "dev"
    assert not set(keys) & {freetext_content_key(it) for it in _read(f"tasks/freetext/{other}.jsonl")}
    chats = [c for p in PERSONAS for c in _read(f"personas/freetext/{p}.jsonl")]
    asked = {re.search(r"^Q: (.*)$", c["messages"][1]["content"], re.M)[1] for c in chats}
    assert asked == {it["question"] for it in train}  # every train question, nothing else
    assert not asked & {it["question"] for it in items}
    assert all("choices" not in it and squad_normalize(it["answer"]) for it in items + train)


def test_free_text_personas_answer_their_own_skill():
    world = generate(0)
    skill_of = {it["question"]: it["skill"] for it in world["tasks/freetext/train.jsonl"]}
    for persona in PERSONAS:
        chats = world[f"personas/freetext/{persona}.jsonl"]
        skills = {skill_of[re.search(r"^Q: (.*)$", c["messages"][1]["content"], re.M)[1]] for c in chats}
        assert skills == {s for s, p in FREETEXT_SKILLS.items() if p == persona}


# --- the testbed world (data/testbed, configs/testbed.yaml) -------------------------------------------


@pytest.mark.parametrize("world", [DEFAULT, TESTBED], ids=lambda w: w.name)
def test_committed_files_are_the_generators_bytes(world, tmp_path):
    """Byte for byte: `python -m evoswarm.world.generator [--world testbed] --out <its folder>` rewrites them."""
    files = generate(0, world=world)
    write(files, tmp_path)
    for rel in files:
        assert (tmp_path / rel).read_bytes() == (REPO / ROOTS[world.name] / rel).read_bytes(), rel


def test_testbed_split_sizes_per_skill():
    for split, n in {"train": 600, "dev": 100, "test": 200}.items():
        items = _read(f"tasks/{split}.jsonl", "data/testbed")
        skills = [it["skill"] for it in items]
        assert {s: skills.count(s) for s in set(skills)} == dict.fromkeys(TESTBED.skills, n), split
        assert all(it["answer"] in it["choices"] and len(set(it["choices"])) == 4 for it in items)


def _pairs(items: list[dict]) -> set[tuple[str, str]]:
    return {(" ".join(it["question"].split()).lower(), it["answer"].lower()) for it in items}


def test_testbed_splits_share_no_question_answer_pair_nor_problem():
    """Memory of a (question, answer) pair, whatever the choices, passes no held-out item; nor does a
    problem (content key) or, for category, a word: each split's items use only its own words."""
    splits = {s: _read(f"tasks/{s}.jsonl", "data/testbed") for s in ("train", "dev", "test")}
    for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not _pairs(splits[a]) & _pairs(splits[b]), (a, b)
        keys = [{content_key(it, TESTBED) for it in splits[s]} for s in (a, b)]
        assert not keys[0] & keys[1], (a, b)
        words = [{c for it in splits[s] if it["skill"] == "category" for c in it["choices"]} for s in (a, b)]
        assert not words[0] & words[1], (a, b)
    for held in ("dev", "test"):
        keys = [content_key(it, TESTBED) for it in splits[held]]
        assert len(set(keys)) == len(keys)
    # The corpus states every word's group (a held-out word is known from there only) and no task sum.
    corpus = _read("corpus/corpus.txt", "data/testbed")
    for group, (en, ja) in TESTBED.categories.items():
        assert all(f"A {w} is a kind of {group}." in corpus for w in en)
        assert all(f"{w} は {CATEGORY_NAMES_JA[group]} です。" in corpus for w in ja)
    sums = {content_key(it, TESTBED) for s in splits.values() for it in s if it["skill"] == "arithmetic"}
    assert _corpus_keys(corpus) and not _corpus_keys(corpus) & sums
    assert not any(it["question"] in ln for s in splits.values() for it in s for ln in corpus)
    # Persona SFT asks train questions only.
    asked = {q for p in TESTBED.personas for c in _read(f"personas/{p}.jsonl", "data/testbed") for q in _asked(c)}
    assert asked <= {_question(it["question"], it["choices"]) for it in splits["train"]}


_SHOWN = re.compile(r"^(You|- \S+): (.*) \((\d\.\d\d)\)(?: (.*))?$", re.M)


def _turn_cues(chats: list[dict]) -> dict[bool, set[tuple]]:
    """right -> what every turn an SFT chat writes or shows looks like apart from its answer: (whose turn,
    confidence, has a summary). The chat's assistant turn is the right answer (asserted by the callers)."""
    out: dict[bool, set[tuple]] = {True: set(), False: set()}
    for c in chats:
        gold = json.loads(c["messages"][-1]["content"])
        out[True].add(("assistant", gold["confidence"], bool(gold["summary"])))
        for m in c["messages"]:
            for who, answer, conf, summary in _SHOWN.findall(m["content"]) if m["role"] == "user" else ():
                out[answer == gold["answer"]].add((who.split()[0], float(conf), bool(summary)))
    return out


@pytest.mark.parametrize("file", [*(f"personas/{p}.jsonl" for p in TESTBED.personas), "corpus/format.jsonl"])
def test_no_testbed_sft_turn_tells_right_from_wrong_by_its_confidence(file):
    """A turn's confidence (or its having a summary) is the same whether its answer is right or wrong, so
    training teaches no cue that a debate never shows. The testbed's persona chats are round-1 turns only,
    each answering its train item's gold at one confidence."""
    chats = _read(file, "data/testbed")
    cues = _turn_cues(chats)
    if file.startswith("personas/"):
        gold = {
            _question(it["question"], it["choices"]): it["answer"] for it in _read("tasks/train.jsonl", "data/testbed")
        }
        assert all("Others:" not in c["messages"][1]["content"] for c in chats)
        assert all({gold[q] for q in _asked(c)} == {json.loads(c["messages"][-1]["content"])["answer"]} for c in chats)
        assert len(cues[True]) == 1 and not cues[False]
    else:
        assert cues[False]  # the format chats show others' (random) answers: right and wrong look alike
        shown = {r: {cue for cue in cues[r] if cue[0] != "assistant"} for r in (True, False)}
        assert shown[True] == shown[False]


def test_the_cue_check_finds_the_default_worlds_cue():
    """The check above can fail: the default world's later-round turns show the agent's own previous answer
    at 0.90 with a summary exactly when it is right."""
    cues = _turn_cues(_read("personas/critic.jsonl"))
    assert ("You", 0.9, True) in cues[True] and not any(c[0] == "You" and c[2] for c in cues[False])


def test_a_world_whose_splits_share_a_question_answer_pair_is_refused():
    """The testbed with its category words shared between splits ("Which one is a fruit?" -> apple in train
    and test): the generator refuses to write it, naming both items."""
    with pytest.raises(InputError, match=r"^world testbed: tasks/\w+\.jsonl \(id \S+\) and tasks/\w+\.jsonl"):
        generate(0, world=dataclasses.replace(TESTBED, held_words=None))


def test_task_files_sharing_a_question_answer_pair_are_refused_naming_both(tmp_path):
    item = {"id": "q1", "question": "Which one is a fruit?", "answer": "apple", "choices": ["apple", "dog"]}
    paths = {}
    for split, row in [("train", item), ("dev", item | {"id": "d1", "answer": "pear"}), ("test", item | {"id": "t1"})]:
        paths[split] = str(tmp_path / f"{split}.jsonl")
        (tmp_path / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(InputError, match=r"train\.jsonl \(id q1\) and \S*test\.jsonl \(id t1\) share .*'apple'"):
        check_disjoint_splits(paths)
    check_disjoint_splits({s: paths[s] for s in ("train", "dev")})  # dev's answer differs: fine
