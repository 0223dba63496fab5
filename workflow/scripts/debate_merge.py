"""Stage debate_merge (and debate_train_merge), with `debate.shards` > 1: join a debate's shards, in shard
order, into the transcripts and votes the unsharded debate writes (evoswarm.debate.shards.merge_shards).

By hand (the shards in order):
  python workflow/scripts/debate_merge.py --shards results/seed0/gen0/debate/shard{0,1}of2 --out results/my-debate
"""

import argparse
from pathlib import Path

from evoswarm import stage
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


sm = stage.from_snakemake(globals())
if sm:
    stage.run(
        main,
        dict(
            shard_transcripts=list(sm.input.transcripts),
            shard_votes=list(sm.input.votes),
            transcripts=sm.output.transcripts,
            votes=sm.output.votes,
        ),
        sm.log[0],
    )
elif __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", nargs="+", required=True, help="the shards' folders, in shard order")
    ap.add_argument("--out", required=True, help="folder for transcripts.jsonl and votes.jsonl")
    a = ap.parse_args()
    out = Path(a.out)
    stage.run(
        main,
        dict(
            shard_transcripts=[str(Path(d) / "transcripts.jsonl") for d in a.shards],
            shard_votes=[str(Path(d) / "votes.jsonl") for d in a.shards],
            transcripts=str(out / "transcripts.jsonl"),
            votes=str(out / "votes.jsonl"),
        ),
    )
