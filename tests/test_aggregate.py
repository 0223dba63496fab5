"""Team aggregation (debate.aggregate): each aggregator fits on dev votes only and answers any coalition;
the configured one decides v(S) and the team's test answer, and every one is recorded for the report."""

import copy
import json
import math
from pathlib import Path

import pytest
from conftest import REPO
from evoswarm.debate.aggregate import AGGREGATORS, Aggregator, dev_record
from evoswarm.evolve.cooperation import revote
from evoswarm.io import InputError, write_jsonl
from evoswarm.protocol.scoring import seeded_hash, weighted_vote

CHOICES = ["1", "2", "3", "4"]


def row(qid, skill, gold, finals):
    """A vote row as the debate writes it: finals {agent: (answer, confidence)}."""
    return {
        "question_id": qid,
        "skill": skill,
        "gold": gold,
        "choices": CHOICES,
        "finals": {a: {"answer": ans, "confidence": c} for a, (ans, c) in finals.items()},
    }


# On dev, `expert` is right on arithmetic every time; `loud` and `echo` are always wrong, and together.
DEV_FINALS = {"expert": ("1", 0.3), "loud": ("2", 0.9), "echo": ("2", 0.8)}
DEV = [row(f"d{i}", "arithmetic", "1", DEV_FINALS) for i in range(10)]
# A test item where the confident pair outvotes the expert.
TEST = row("t0", "arithmetic", "3", {"expert": ("3", 0.3), "loud": ("4", 0.9), "echo": ("4", 0.8)})


def test_confidence_is_the_plain_confidence_vote():
    finals = [(f["answer"], f["confidence"]) for f in TEST["finals"].values()]
    assert Aggregator.fit("confidence", DEV, "choice").vote(TEST["finals"], TEST, 0, "choice") == weighted_vote(
        finals, 0, "t0"
    )


@pytest.mark.parametrize("name", ["weighted", "router"])
def test_fitted_aggregators_follow_dev_accuracy_not_confidence(name):
    assert Aggregator().vote(TEST["finals"], TEST, 0, "choice")[0] == "4"  # the confident wrong pair wins
    assert Aggregator.fit(name, DEV, "choice").vote(TEST["finals"], TEST, 0, "choice")[0] == "3"


def test_weights_are_zero_at_or_below_chance_and_positive_above():
    record = dev_record(DEV, "choice")
    assert record["expert"]["arithmetic"] == (10.0, 10) and record["loud"]["arithmetic"] == (0.0, 10)
    weighted = Aggregator.fit("weighted", DEV, "choice")
    weights = AGGREGATORS["weighted"](weighted, TEST["finals"], "arithmetic", 4, 0)
    assert weights["expert"] > 0 and weights["loud"] == weights["echo"] == 0.0
    # (K - 1) p / (1 - p) = 1 exactly at chance: weight 0; with p = 11/12 on 4 choices log(33)
    assert weights["expert"] == pytest.approx(math.log(33))


def test_skills_dev_never_saw_fall_back_to_the_confidences():
    unseen = {**TEST, "skill": "category"}
    for name in ("weighted", "router"):
        assert Aggregator.fit(name, DEV, "choice").vote(unseen["finals"], unseen, 0, "choice")[0] == "4"


def test_router_ties_go_by_a_seeded_hash_of_the_agents_not_their_order():
    dev = [row(f"d{i}", "s", "1", {"a": ("1", 0.5), "b": ("1", 0.5)}) for i in range(4)]
    router = Aggregator.fit("router", dev, "choice")
    finals = {"a": {"answer": "1", "confidence": 0.1}, "b": {"answer": "2", "confidence": 0.9}}
    item = {"id": "t", "skill": "s", "choices": CHOICES}
    for seed in range(6):
        chosen = min(["a", "b"], key=lambda n: seeded_hash(seed, "s", n))
        want = finals[chosen]["answer"]
        assert router.vote(finals, item, seed, "choice")[0] == want
        assert router.vote(dict(reversed(finals.items())), item, seed, "choice")[0] == want


def test_router_picks_the_best_member_of_the_coalition():
    router = Aggregator.fit("router", DEV, "choice")
    pair = {a: TEST["finals"][a] for a in ("loud", "echo")}
    assert router.vote(pair, TEST, 0, "choice")[0] == "4"  # without the expert, the best of those left
    assert revote([TEST], ["expert", "loud", "echo"], "choice", 0, router) == 1.0
    assert revote([TEST], ["expert", "loud", "echo"], "choice", 0) == 0.0  # confidence
    assert revote([TEST], ["loud", "echo"], "choice", 0, router) == 0.0


def test_weights_table_is_the_smoothed_dev_accuracy():
    table = Aggregator.fit("weighted", DEV, "choice").weights_table()
    assert table == {"echo": {"arithmetic": 0.0833}, "expert": {"arithmetic": 0.9167}, "loud": {"arithmetic": 0.0833}}


def test_config_refuses_an_unknown_aggregator_and_one_beside_the_judge(smoke_config, tmp_path):
    import yaml
    from evoswarm.config import load_config

    for change, words in [
        ({"aggregator": "borda"}, "debate.aggregator"),
        ({"aggregator": "router", "judge": True}, "debate.aggregator router"),
    ]:
        raw = yaml.safe_load((REPO / "configs/smoke.yaml").read_text())
        raw.setdefault("debate", {}).update(change)
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(raw))
        with pytest.raises(InputError, match=words) as e:
            load_config(str(path))
        assert "\n" not in str(e.value)


def test_the_aggregator_reruns_fitness_and_evaluation_never_the_debate(smoke_config):
    from evoswarm.config import stage_config

    other = copy.deepcopy(smoke_config)
    other["debate"]["aggregator"] = "router"
    for stage, changes in [("debate", False), ("debate_train", False), ("fitness", True), ("evaluate", True)]:
        assert (stage_config(smoke_config, stage) != stage_config(other, stage)) == changes, stage


def test_the_team_target_answers_by_the_configured_aggregator_and_records_every_one(
    tiny_base, tiny_adapters, smoke_config, tmp_path
):
    """With dev votes where critic is always right and ideator always wrong, the router's team answers are
    the critic's final answers on test; every aggregator's per-item scores and the fit are in the JSON."""
    from evoswarm.config import stage_config
    from evoswarm.evaluate import job
    from evoswarm.world.items import load_items

    test = str(REPO / "data/tasks/test.jsonl")
    items = load_items(test, 6)
    dev = [
        {
            "question_id": it["id"],
            "skill": it["skill"],
            "gold": it["answer"],
            "choices": it["choices"],
            "finals": {
                "critic": {
                    "answer": it["answer"],
                    "confidence": 0.1,
                    "choice_logprobs": [2.0 if c == it["answer"] else 0.0 for c in it["choices"]],
                },
                "ideator": {"answer": next(c for c in it["choices"] if c != it["answer"]), "confidence": 0.9},
            },
        }
        for it in load_items(str(REPO / "data/tasks/dev.jsonl"))
    ]
    dev_votes = tmp_path / "votes.jsonl"
    write_jsonl(str(dev_votes), dev)
    cfg = copy.deepcopy(smoke_config)
    cfg["evaluation"]["limit"] = 6
    cfg["debate"]["aggregator"] = "router"
    out = tmp_path / "team-gen0.json"
    adapters = [str(a) for a in tiny_adapters.values()]
    job.evaluate(
        stage_config(cfg, "evaluate"), str(tiny_base), test, {"team-gen0": str(out)}, adapters, dev_votes=str(dev_votes)
    )
    ev = json.loads(Path(out).read_text())["evoswarm"]
    assert ev["aggregator"] == "router" and sorted(ev["aggregators"]) == sorted(AGGREGATORS)
    assert [r["correct"] for r in ev["per_item"]] == ev["aggregators"]["router"]
    assert all(ev["dev_accuracy"]["critic"][s] > 0.9 for s in ev["dev_accuracy"]["critic"])
    assert all(ev["dev_accuracy"]["ideator"][s] < 0.1 for s in ev["dev_accuracy"]["ideator"])
    assert len(ev["aggregators"]["confidence"]) == len(items)
    # calibration: fitted where dev recorded log-likelihoods (the critic's), measured on the test debate's
    assert list(ev["calibration"]) == ["critic"] and ev["calibration"]["critic"]["dev_turns"] == len(dev)
    assert ev["calibration"]["critic"]["test_turns"] == len(items)
    assert ev["calibration"]["critic"]["temperature"] < 1  # always right on dev: sharper than recorded


def test_a_fitted_aggregator_without_dev_votes_is_refused(tiny_base, tiny_adapters, smoke_config, tmp_path):
    from evoswarm.config import stage_config
    from evoswarm.evaluate import job

    cfg = copy.deepcopy(smoke_config)
    cfg["evaluation"]["limit"] = 2
    cfg["debate"]["aggregator"] = "weighted"
    out = {"team-gen0": str(tmp_path / "team-gen0.json")}
    with pytest.raises(InputError, match="--dev-votes"):
        job.evaluate(
            stage_config(cfg, "evaluate"),
            str(tiny_base),
            str(REPO / "data/tasks/test.jsonl"),
            out,
            [str(a) for a in tiny_adapters.values()],
        )
