"""Stage train_persona: one generation-0 agent = the base + a LoRA trained with TRL on its persona's chats.

By hand: python workflow/scripts/train_persona.py --config config.yaml --persona critic \
             --base results/base --out results/seed0/gen0/adapters/critic
"""

from evoswarm import stage
from evoswarm.config import gen0_members
from evoswarm.model.persona import train_persona


def persona(run: stage.Hand) -> dict:
    """The generation-0 slot --persona names."""
    slots, name = gen0_members(run.config), run.flags.persona
    if name not in slots:
        raise SystemExit(f"--persona: {name!r} is not a generation-0 slot ({', '.join(slots)})")
    return slots[name]


if __name__ == "__main__":
    stage.entry(
        train_persona,
        stage="train_persona",
        threads=stage.MODEL_THREADS,
        slot=stage.Arg("wildcards.agent", "--persona", required=True, help="a generation-0 slot name (a persona name)"),
        persona=stage.Arg("params.persona", hand=persona),
        base=stage.BASE,
        out=stage.Arg("output[0]", "--out", required=True),
    )
