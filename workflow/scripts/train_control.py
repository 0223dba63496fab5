"""Stage train_control: a trained control of one replicate (evoswarm.controls.TRAINERS): multitask, one LoRA
on the union of the personas' SFT data; specialist-long, generation 0's best agent trained further.

By hand: python workflow/scripts/train_control.py --config config.yaml --control multitask \
             --base results/base --out results/seed0/controls/multitask
         python workflow/scripts/train_control.py --config config.yaml --control specialist-long \
             --base results/base --adapters results/seed0/gen0/adapters/* \
             --fitness results/seed0/gen0/fitness.csv --out results/seed0/controls/specialist-long
"""

from evoswarm import stage
from evoswarm.controls import TRAINERS, train_control

if __name__ == "__main__":
    stage.entry(
        train_control,
        stage="train_control",
        threads=stage.MODEL_THREADS,
        control=stage.Arg("wildcards.control", "--control", required=True, choices=sorted(TRAINERS)),
        base=stage.BASE,
        out=stage.Arg("output[0]", "--out", required=True),
        adapters=stage.Arg("input.adapters", "--adapters", nargs="*", default=[], help="specialist-long: gen 0's"),
        fitness=stage.Arg("input.fitness", "--fitness", help="specialist-long: gen 0's fitness.csv"),
    )
