"""Stage debate_merge (and debate_train_merge), with `debate.shards` > 1: join a debate's shards, in shard
order, into the transcripts and votes the unsharded debate writes (evoswarm.debate.shards.merge_shards).

By hand (the shards in order):
  python workflow/scripts/debate_merge.py --shards results/seed0/gen0/debate/shard{0,1}of2 --out results/my-debate
"""

from evoswarm import layout, stage
from evoswarm.debate.shards import merge_shards
from evoswarm.io import read_jsonl, write_jsonl


def main(shard_transcripts: list[str], shard_votes: list[str], transcripts: str, votes: str) -> None:
    rows, vote_rows = merge_shards([(read_jsonl(t), read_jsonl(v)) for t, v in zip(shard_transcripts, shard_votes)])
    write_jsonl(transcripts, rows)
    write_jsonl(votes, vote_rows)  # written last: its presence means the debate finished
    print(
        f"merged {len(shard_votes)} shards: {len(rows)} turns, {len(vote_rows)} questions; "
        f"team accuracy {sum(v['correct'] for v in vote_rows) / len(vote_rows):.3f}"
    )


def shard_files(name: str) -> stage.Arg:
    return stage.Arg(f"input.{name}", hand=lambda run: [layout.debate_file(d, name) for d in run.flags.shards])


def merged_file(name: str) -> stage.Arg:
    return stage.Arg(f"output.{name}", hand=lambda run: layout.debate_file(run.flags.out, name))


if __name__ == "__main__":
    stage.entry(
        main,
        shard_transcripts=shard_files("transcripts"),
        shard_votes=shard_files("votes"),
        transcripts=merged_file("transcripts"),
        votes=merged_file("votes"),
        flags={
            "--shards": dict(nargs="+", required=True, help="the shards' folders, in shard order"),
            "--out": dict(required=True, help="folder for transcripts.jsonl and votes.jsonl"),
        },
    )
