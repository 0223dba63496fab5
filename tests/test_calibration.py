"""Temperature scaling fitted on dev (debate.calibration): it recovers a known miscalibration, lowers the
calibration error, never changes an answer, and the `calibrated` aggregator votes with it."""

import numpy as np
import pytest
from evoswarm.debate.aggregate import Aggregator
from evoswarm.debate.calibration import calibration_errors, ece, fit_temperature, gold_turns, scaled_confidence


def miscalibrated(n: int, sharpen: float, seed: int = 0) -> tuple[list[list[float]], list[int]]:
    """Items whose gold follows softmax(z) while the recorded log-likelihoods are sharpen * z: an agent
    `sharpen` times too sure (T = sharpen undoes it)."""
    rng = np.random.default_rng(seed)
    logprobs, gold = [], []
    for _ in range(n):
        z = rng.normal(0, 1.5, size=4)
        p = np.exp(z - z.max())
        p /= p.sum()
        gold.append(int(rng.choice(4, p=p)))
        logprobs.append(list(sharpen * z))
    return logprobs, gold


@pytest.mark.parametrize("sharpen", [0.5, 1.0, 3.0])
def test_the_fitted_temperature_undoes_a_known_sharpening(sharpen):
    logprobs, gold = miscalibrated(3000, sharpen)
    assert fit_temperature(logprobs, gold) == pytest.approx(sharpen, rel=0.12)


def as_votes(logprobs: list[list[float]], gold: list[int]) -> list[dict]:
    """Vote rows of one agent `x` whose final answers recorded these log-likelihoods."""
    choices = ["a", "b", "c", "d"]
    return [
        {"question_id": f"q{i}", "gold": choices[g], "choices": choices, "finals": {"x": {"choice_logprobs": lp}}}
        for i, (lp, g) in enumerate(zip(logprobs, gold))
    ]


def test_scaling_lowers_the_calibration_error_of_an_overconfident_agent():
    logprobs, gold = miscalibrated(2000, 3.0)
    t = fit_temperature(logprobs[:1000], gold[:1000])  # fitted on one half, measured on the other
    errors = calibration_errors(as_votes(logprobs[1000:], gold[1000:]), "x", t, "test")
    assert errors["test_turns"] == 1000
    assert errors["test_ece"] > 0.1 and errors["test_ece_scaled"] < errors["test_ece"] / 2


def test_scaling_never_changes_the_answer():
    logprobs, _ = miscalibrated(200, 2.0)
    for lp in logprobs:
        for t in (0.1, 1.0, 7.0):
            p = np.exp(np.asarray(lp) / t)
            assert int(np.argmax(p)) == int(np.argmax(lp))
            assert scaled_confidence(lp, t) == pytest.approx(p.max() / p.sum())


def test_ece_of_known_cases():
    assert ece([1.0] * 10, [1.0] * 5 + [0.0] * 5) == 0.5
    assert ece([0.3] * 10, [1.0] * 3 + [0.0] * 7) == 0.0
    assert ece([], []) == 0.0
    assert fit_temperature([], []) == 1.0


def final(answer, logprobs):
    p = np.exp(np.asarray(logprobs) - max(logprobs))
    return {"answer": answer, "confidence": float(p.max() / p.sum()), "choice_logprobs": logprobs}


def test_the_calibrated_vote_trusts_the_agent_whose_confidence_means_something():
    """On dev `brash` is very sure and right 1 time in 4 (chance); `modest` is mildly sure and always right.
    On a test item where they disagree, the raw confidences follow brash, the calibrated ones modest."""
    choices = ["1", "2", "3", "4"]
    dev = []
    for i in range(40):
        gold = choices[i % 4]
        brash = choices[0]  # always the first: right on a quarter of the items
        dev.append(
            {
                "question_id": f"d{i}",
                "gold": gold,
                "choices": choices,
                "skill": "s",
                "finals": {
                    "brash": final(brash, [8.0 if c == brash else 0.0 for c in choices]),
                    "modest": final(gold, [1.0 if c == gold else 0.0 for c in choices]),
                },
            }
        )
    item = {"id": "t", "skill": "s", "choices": choices}
    test = {"brash": final("1", [8.0, 0, 0, 0]), "modest": final("2", [0, 1.0, 0, 0])}
    assert Aggregator().vote(test, item, 0, "choice")[0] == "1"
    fitted = Aggregator.fit("calibrated", dev, "choice")
    assert fitted.temperatures["brash"] > 5 and fitted.temperatures["modest"] < 1
    assert fitted.vote(test, item, 0, "choice")[0] == "2"
    cal = fitted.calibration["modest"]
    assert cal["dev_turns"] == 40 and cal["dev_ece_scaled"] < cal["dev_ece"]


def test_generated_turns_have_nothing_to_calibrate():
    votes = [{"question_id": "q", "gold": "7", "choices": None, "finals": {"a": {"answer": "7", "confidence": 0.5}}}]
    assert gold_turns(votes, "a") == ([], [])
    fitted = Aggregator.fit("calibrated", votes, "exact")
    assert fitted.temperatures == {} and fitted.calibration == {}
    assert fitted.vote(votes[0]["finals"], votes[0], 0, "exact")[0] == "7"
