"""One debate job through the GPU pool (evoswarm.gpu_pool), for bench/two_gpu_debates.sh: take a free
device, then load the base on it and debate the dev questions (the smoke config's personas as
base-model agents, no adapters) again and again for --seconds; log the device and the job's start and
end times. Needs torch, transformers, peft and PyYAML only (no jsonschema, no Snakemake).

  PYTHONPATH=workflow python bench/pool_debate.py --base results-smoke/base --name a --seconds 30
"""

import argparse
import os
import time

from evoswarm import gpu_pool

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--personas", default="configs/smoke.yaml", help="a config file whose personas debate")
ap.add_argument("--base", required=True)
ap.add_argument("--tasks", default="data/tasks/dev.jsonl")
ap.add_argument("--name", default="job")
ap.add_argument("--seconds", type=float, default=30.0, help="keep debating this long (so two jobs overlap)")
a = ap.parse_args()

# Before torch is imported: CUDA reads CUDA_VISIBLE_DEVICES once, when it starts.
gpu_pool.claim(owner=a.name)
import torch  # noqa: E402
import yaml  # noqa: E402
from evoswarm.backends import make_backend  # noqa: E402
from evoswarm.debate.agents import Agent  # noqa: E402
from evoswarm.debate.loop import DebateSettings, run_debate  # noqa: E402
from evoswarm.world.items import load_items  # noqa: E402

start = time.time()
# The keys the hf backend reads, set here: loading a config validates it, which needs jsonschema.
config = {
    "base": {"device": "cuda", "dtype": "auto", "trust_remote_code": False},
    "debate": {"batch_size": 32, "static_cache": False},
}
backend = make_backend("hf", a.base, config)
i = torch.cuda.current_device()
uuid = getattr(torch.cuda.get_device_properties(i), "uuid", "?")  # as nvidia-smi -L names the card
print(
    f"{a.name}: pid {os.getpid()} CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')} "
    f"torch device cuda:{i} = {torch.cuda.get_device_name(i)} (GPU-{uuid}) "
    f"of {torch.cuda.device_count()} visible",
    flush=True,
)
with open(a.personas, encoding="utf-8") as f:
    agents = [Agent(p["name"], p["system"], None) for p in yaml.safe_load(f)["personas"]]
items = load_items(a.tasks, 30)
settings = DebateSettings(rounds=2, max_new_tokens=16)
debates = 0
while debates == 0 or time.time() - start < a.seconds:
    _, votes = run_debate(backend, agents, items, settings)
    debates += 1
team = sum(v["correct"] for v in votes) / len(votes)
print(
    f"{a.name}: start {start:.1f} end {time.time():.1f} ({time.time() - start:.1f} s); {debates} debates of "
    f"{len(agents)} agents x {len(items)} questions on {torch.cuda.get_device_name(i)}; last team accuracy {team:.3f}",
    flush=True,
)
