from evoswarm.protocol.parsing import match_choice, parse_turn
from evoswarm.protocol.scoring import weighted_vote
from hypothesis import given
from hypothesis import strategies as st


@given(st.text())
def test_never_raises(text):
    t = parse_turn(text)
    assert 0.0 <= t.confidence <= 1.0


def test_lenient_cases():
    assert parse_turn('{"answer": "7", "confidence": 0.8, "summary": "3+4"}').answer == "7"
    t = parse_turn('Sure!\n```json\n{"answer": "melon", "confidence": 80, "summary": "fruit"}\n```\nDone')
    assert (t.answer, t.confidence, t.ok) == ("melon", 0.8, True)
    t = parse_turn('｛"answer": "１２", "summary": "全角"｝')
    assert (t.answer, t.confidence) == ("12", 0.5)
    assert parse_turn("{'answer': 'bus', 'confidence': 7}").confidence == 0.07
    assert parse_turn('{"answer": "bus", "confidence": -3}').confidence == 0.0
    t = parse_turn('{"answer": "13", "confidence": 0.9, "summary": "cut off')
    assert (t.answer, t.confidence, t.ok) == ("13", 0.9, True)
    assert parse_turn("I don't know").ok is False
    assert parse_turn("").ok is False


def test_match_choice():
    assert match_choice("Melon.", ["melon", "bus"]) == "melon"
    assert match_choice("the answer is 12", ["12", "13"]) == "12"
    assert match_choice("12 or 13", ["12", "13"]) is None


def test_weighted_vote():
    assert weighted_vote([("7", 0.4), ("8", 0.9), ("7", 0.6)], 0, "q")[0] == "7"
    assert weighted_vote([("", 0.9), ("8", 0.1)], 0, "q")[0] == "8"  # empty answers abstain
    assert weighted_vote([("", 0.9)], 0, "q") == ("", {})
