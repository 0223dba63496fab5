#!/bin/bash
# The default main job's wall time on this machine, at a commit, with a per-rule table from Snakemake's
# benchmark files; run two commits one after the other (nothing else running) to compare them:
#   bench/main_job_time.sh 99f7c3a /tmp/t_old && bench/main_job_time.sh HEAD /tmp/t_new
# Uses the venv of the checkout it is run from (.venv); DIR is replaced by a fresh clone.
set -u
commit=$1 dir=$2 repo=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$dir" && git clone -q "$repo" "$dir" && git -C "$dir" checkout -q "$commit" || exit 1
cd "$dir" || exit 1
export PYTHONPATH=$dir/workflow PATH=$repo/.venv/bin:$PATH HF_HUB_OFFLINE=1
start=$(date +%s)
snakemake --cores 2 > run.log 2>&1
rc=$? wall=$(( $(date +%s) - start ))
echo "commit $(git rev-parse --short HEAD) rc=$rc wall $wall s" | tee -a run.log
python3 - benchmarks <<'PY' | tee per_rule.txt
import collections, csv, pathlib, sys
total = collections.defaultdict(lambda: [0, 0.0, 0.0])  # rule -> jobs, wall s, cpu s
for f in sorted(pathlib.Path(sys.argv[1]).rglob("*.tsv")):
    row = list(csv.DictReader(open(f), delimiter="\t"))[-1]
    t = total[f.relative_to(sys.argv[1]).parts[0]]
    t[0], t[1], t[2] = t[0] + 1, t[1] + float(row["s"]), t[2] + float(row["cpu_time"])
print(f"{'rule':22s} jobs  wall_s  cpu_s")
for rule, (n, s, c) in sorted(total.items(), key=lambda kv: -kv[1][1]):
    print(f"{rule:22s} {n:4d} {s:7.1f} {c:7.1f}")
print(f"{'total':22s} {sum(v[0] for v in total.values()):4d} {sum(v[1] for v in total.values()):7.1f}")
PY
