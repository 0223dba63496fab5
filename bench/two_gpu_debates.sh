#!/usr/bin/env bash
# Two debate jobs at the same time on one host with >= 2 GPUs, each taking its device from the GPU pool
# (evoswarm.gpu_pool): their logs show different CUDA_VISIBLE_DEVICES / torch devices (by UUID, as
# nvidia-smi -L lists them) and overlapping start..end times; nvidia-smi, sampled mid-run, shows both
# cards in use.
#
#   bench/two_gpu_debates.sh BASE_DIR [SECONDS] [OUT_DIR]
#
# BASE_DIR: a built embedded base (e.g. results-smoke/base from
# `python workflow/scripts/build_base.py --config configs/smoke.yaml --out results-smoke/base`).
# Needs torch with CUDA, transformers, peft; no Snakemake. Exits 1 unless the two jobs got different devices.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench/two_gpu_debates.sh BASE_DIR [SECONDS] [OUT_DIR]}
seconds=${2:-30}
out=${3:-$(mktemp -d)}
mkdir -p "$out"
export PYTHONPATH="$PWD/workflow${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
export EVOSWARM_GPU_LOCK_DIR="$out/locks"   # this demo's own pool; jobs of one host share one folder
unset CUDA_VISIBLE_DEVICES SLURM_JOB_ID     # a preset device would be kept, and the pool not used
python=${PYTHON:-python}

nvidia-smi -L
for job in a b; do
    "$python" bench/pool_debate.py --base "$base" --name "$job" --seconds "$seconds" >"$out/$job.log" 2>&1 &
    pids+=($!)
done
sleep $((seconds / 2))
nvidia-smi --query-gpu=index,uuid,memory.used,utilization.gpu --format=csv | tee "$out/nvidia-smi.csv"
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
for job in a b; do echo "== $out/$job.log"; grep -E '^(gpu pool|[ab]:)' "$out/$job.log" || cat "$out/$job.log"; done
[ "$status" = 0 ] || { echo "a job failed"; exit 1; }
devices=$(grep -ho 'CUDA_VISIBLE_DEVICES=[0-9A-Za-z-]*' "$out/a.log" "$out/b.log" | sort -u | wc -l)
[ "$devices" = 2 ] || { echo "FAIL: both jobs on the same device"; exit 1; }
echo "OK: two jobs, two devices (logs in $out)"
