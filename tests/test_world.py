import json
import re
from pathlib import Path

import pytest
from evoswarm.io import InputError
from evoswarm.world.generator import FREETEXT_SKILLS, PERSONAS, SKILLS, content_key, freetext_content_key, generate

REPO = Path(__file__).resolve().parent.parent


def _read(rel: str) -> list:
    text = (REPO / "data" / rel).read_text(encoding="utf-8").splitlines()
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
