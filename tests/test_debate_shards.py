"""`debate.shards`: a debate split into jobs over slices of its questions, merged in order, writes the
same files as the unsharded debate (greedy decoding, CPU); the workflow runs the shards as jobs; more
shards than questions fails at start-up in one line naming the key."""

import copy
import runpy

import pytest
from conftest import REPO, run_snakemake
from evoswarm.config import stage_config
from evoswarm.debate.generation import debate_generation as DEBATE
from evoswarm.debate.shards import merge_shards, shard_bounds
from evoswarm.io import InputError, read_jsonl

MERGE = runpy.run_path(str(REPO / "workflow/scripts/debate_merge.py"), run_name="debate_merge")["main"]


def job_counts(dry_run_stdout: str) -> dict[str, int]:
    rows = (line.split() for line in dry_run_stdout.splitlines())
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit()}


def test_shards_are_contiguous_near_equal_slices():
    assert shard_bounds(7, 3) == [(0, 2), (2, 4), (4, 7)]
    assert shard_bounds(3, 3) == [(0, 1), (1, 2), (2, 3)]
    with pytest.raises(InputError, match="^debate.shards is 4 but the debate has 3 questions: at most 3$"):
        shard_bounds(3, 4)


def test_merge_puts_rows_back_in_round_then_question_order():
    def turns(qs):
        return [{"round": r, "question_id": q} for r in (1, 2) for q in qs]

    shards = [(turns(["a", "b"]), [{"question_id": "a"}, {"question_id": "b"}]), (turns(["c"]), [{"question_id": "c"}])]
    transcripts, votes = merge_shards(shards)
    assert transcripts == turns(["a", "b", "c"]) and votes == [{"question_id": q} for q in "abc"]


@pytest.mark.parametrize(
    "split, sample, debate",
    [
        ("dev", None, {"max_questions": 5}),  # the fitness debate: the first questions, loglik answers
        ("train", 5, {"answer_mode": "generate", "judge": True}),  # distillation's seeded sample, a judge
    ],
)
def test_sharded_debate_writes_the_unsharded_files_byte_for_byte(
    split, sample, debate, tmp_path, tiny_base, tiny_adapters, smoke_config
):
    config = copy.deepcopy(stage_config(smoke_config, "debate"))
    config["debate"].update(debate)
    args = dict(
        base=str(tiny_base), adapters=[str(tiny_adapters[n]) for n in ("critic", "ideator")], gen=1, sample=sample
    )
    args["tasks"] = str(REPO / f"data/tasks/{split}.jsonl")

    def out(folder):
        return dict(
            transcripts=str(tmp_path / folder / "transcripts.jsonl"), votes=str(tmp_path / folder / "votes.jsonl")
        )

    DEBATE(config, **args, **out("whole"))
    shards = [out(f"shard{k}") for k in range(3)]
    for k, files in enumerate(shards):
        DEBATE({**config, "shard": [k, 3]}, **args, **files)
    MERGE([s["transcripts"] for s in shards], [s["votes"] for s in shards], **out("merged"))

    name = "transcripts.jsonl"
    assert (tmp_path / "merged" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes(), name
    # Votes equal record for record but for `seconds`, each run's own wall time a question.
    merged, whole = (read_jsonl(tmp_path / f / "votes.jsonl") for f in ("merged", "whole"))
    assert len(merged) == len(whole)
    assert all(m.pop("seconds") > 0 and w.pop("seconds") > 0 for m, w in zip(merged, whole))
    assert merged == whole
    with pytest.raises(InputError, match="^debate.shards is 8 but the debate has 5 questions: at most 5$"):
        DEBATE({**config, "shard": [0, 8]}, **args, **out("too-many"))


def test_the_workflow_runs_each_shard_as_a_job_and_merges_them(tmp_path):
    shards = tmp_path / "shards.yaml"
    shards.write_text(
        (REPO / "configs/smoke.yaml").read_text() + "\ndebate: {rounds: 2, max_questions: 9, shards: 3}\n"
    )
    plain = job_counts(run_snakemake(tmp_path / "plain", "-n", "--quiet", "rules").stdout)
    sharded = job_counts(run_snakemake(tmp_path / "sharded", "-n", "--quiet", "rules", config=shards).stdout)
    debates = plain["debate"]
    assert "debate_merge" not in plain
    assert sharded["debate"] == 3 * debates and sharded["debate_merge"] == debates
    assert {k: v for k, v in sharded.items() if not k.startswith(("debate", "total"))} == {
        k: v for k, v in plain.items() if not k.startswith(("debate", "total"))
    }
    lint = run_snakemake(tmp_path / "sharded", "--lint", config=shards, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_more_shards_than_questions_fails_at_start_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((REPO / "configs/smoke.yaml").read_text() + "\ndebate: {max_questions: 9, shards: 10}\n")
    r = run_snakemake(tmp_path / "w", "-n", config=bad, check=False)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert r.returncode != 0
    line = len((REPO / "configs/smoke.yaml").read_text().splitlines()) + 2
    assert errors == [f"error: {bad}:{line}: debate.shards is 10 but the debate has 9 questions: at most 9"]


def test_no_stage_reads_the_shard_count(smoke_config):
    """Changing how a debate is split into jobs changes no stage's params, so it reruns no stage."""
    sharded = copy.deepcopy(smoke_config)
    sharded["debate"]["shards"] = 3
    for stage in ("debate", "debate_train", "fitness", "evaluate"):
        assert stage_config(sharded, stage) == stage_config(smoke_config, stage)
        assert "shards" not in stage_config(sharded, stage)["debate"]
