"""Stage lamarck: one slot of a bred generation after its Lamarckian step (`evolution.lamarck.step`):
a bounded, seeded SFT of the bred child from its own weights, or a copy (elites, step `none`).

By hand: python workflow/scripts/lamarck.py --config config.yaml --bred results/seed0/gen1/bred/s01 \
             --out results/seed0/gen1/adapters/s01 [--transcripts .../gen0/debate_train/transcripts.jsonl \
             --votes .../gen0/debate_train/votes.jsonl]
"""

from evoswarm import stage
from evoswarm.evolve.offspring import lamarck_step

if __name__ == "__main__":
    stage.entry(
        lamarck_step,
        stage="lamarck",
        threads=stage.MODEL_THREADS,
        bred=stage.Arg("input.bred", "--bred", required=True),
        out=stage.Arg("output[0]", "--out", required=True),
        base=stage.BASE,
        transcripts=stage.Arg("input.transcripts", "--transcripts", help="distill: the parents' train-split debate"),
        votes=stage.Arg("input.votes", "--votes"),
    )
