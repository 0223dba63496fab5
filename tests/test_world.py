import json
from pathlib import Path

from evoswarm.world import PERSONAS, SKILLS, generate

REPO = Path(__file__).resolve().parent.parent


def test_generator_is_deterministic_and_seeded():
    a, b, c = generate(0), generate(0), generate(1)
    assert a == b
    assert a["tasks/dev.jsonl"] != c["tasks/dev.jsonl"]


def test_committed_world_is_the_generators_output():
    """data/ must be regenerated (python -m evoswarm.world --out data) whenever the generator changes."""
    for rel, rows in generate(0).items():
        text = (REPO / "data" / rel).read_text(encoding="utf-8").splitlines()
        expected = [json.dumps(r, ensure_ascii=False) if rel.endswith(".jsonl") else r for r in rows]
        assert text == expected, rel


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
