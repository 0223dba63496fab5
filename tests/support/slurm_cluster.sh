#!/bin/sh
# A real one-node SLURM cluster on this machine, for the tests (CI runs as root on Debian, with no init system).
#   slurm_cluster.sh start STATE_DIR   apt-installs what is missing, writes STATE_DIR/slurm.conf for this node,
#                                      starts munged, slurmctld and slurmd by hand and waits until the node is idle;
#                                      prints the partition's name (it is no default partition: jobs must name it)
#   slurm_cluster.sh stop STATE_DIR    cancels the partition's jobs and ends the three daemons by the PIDs that
#                                      start recorded
# With PYTHON set, start also pip-installs the SLURM executor plugin into it when it is missing (pinned in
# constraints.txt; the dev extra has it, so this is for a venv made otherwise).
# Fails loudly, never silently: without root and apt-get it says why. Every step is bounded by `timeout -k`.
set -eu
PARTITION=evoswarm
cmd=${1:?usage: slurm_cluster.sh start|stop STATE_DIR}
state=${2:?usage: slurm_cluster.sh start|stop STATE_DIR}
die() {
    echo "slurm_cluster: $*" >&2
    exit 1
}

stop() {
    [ -f "$state/pids" ] || return 0
    pids=$(cat "$state/pids")
    # Jobs first: their processes hang off slurmstepd, not off the daemons.
    SLURM_CONF="$state/slurm.conf" timeout -k 2 10 scancel --partition="$PARTITION" 2>/dev/null || true
    i=0
    while [ $i -lt 20 ] && [ -n "$(SLURM_CONF="$state/slurm.conf" timeout -k 2 5 squeue -h -p "$PARTITION" 2>/dev/null)" ]; do
        sleep 0.5
        i=$((i + 1))
    done
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
    i=0
    while [ $i -lt 50 ]; do
        alive=""
        for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done
        [ -z "$alive" ] && break
        sleep 0.2
        i=$((i + 1))
    done
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -f "$state/pids"
    # The jobstep plugin strips SLURM_CONF before its nested srun, hence the link in /etc (start made it).
    [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$state/slurm.conf" ] && rm -f /etc/slurm/slurm.conf
    return 0
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi
[ "$cmd" = start ] || die "unknown command $cmd (start or stop)"

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
    || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "slurmctld, slurmd, sbatch or munged is missing and cannot be apt-installed here (need root and apt-get)"
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt/dpkg run to finish instead of failing on its lock.
    timeout -k 10 900 apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    timeout -k 10 900 apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >&2
fi
if [ -n "${PYTHON:-}" ] && ! "$PYTHON" -c 'import snakemake_executor_plugin_slurm' 2>/dev/null; then
    timeout -k 10 600 "$PYTHON" -m pip install -q -c "$(dirname "$0")/../../constraints.txt" \
        snakemake-executor-plugin-slurm >&2
fi
[ "$(id -u)" -eq 0 ] || die "the daemons run as root and munge here: need root"
# Our conf must be the one every SLURM command reads (see stop); never replace a real cluster's.
if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    die "/etc/slurm/slurm.conf exists and is no link of ours: a real cluster's config, left alone"
fi

mkdir -p "$state/ctld" "$state/spool" "$state/munge"
state=$(cd "$state" && pwd)
chown munge:munge "$state/munge"
chmod 0755 "$state/munge"  # munged wants its socket folder searchable by all
[ -s /etc/munge/munge.key ] || timeout -k 5 60 setpriv --reuid=munge --regid=munge --init-groups mungekey --create >&2

host=$(hostname -s)
# CPUs and cores as slurmd sees them; RealMemory a little below what is free, so the node is never drained for it.
node=$(timeout -k 5 60 slurmd -C | head -1 | sed 's/ RealMemory=[0-9]*//')
mem=$(free -m | awk '/^Mem:/ {print $7 - 1000}')
cat >"$state/slurm.conf" <<EOF
ClusterName=evoswarm-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
# squeue still lists a finished job for MinJobAge s: the executor's squeue status check needs it.
MinJobAge=300
$node RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=NO MaxTime=INFINITE State=UP
EOF
mkdir -p /etc/slurm
ln -sfn "$state/slurm.conf" /etc/slurm/slurm.conf

# Started in the foreground of their own sessions: $! is the daemon itself, so stop can end it by PID.
: >"$state/pids"
trap 'stop' EXIT
setsid setpriv --reuid=munge --regid=munge --init-groups munged --foreground \
    --socket="$state/munge/munge.socket" --pid-file="$state/munge/munged.pid" \
    --seed-file="$state/munge/munged.seed" --log-file="$state/munge/munged.log" </dev/null >/dev/null 2>&1 &
echo $! >>"$state/pids"
i=0
until [ -S "$state/munge/munge.socket" ]; do
    i=$((i + 1))
    [ $i -le 100 ] || die "munged did not start in 20 s: $(tail -3 "$state/munge/munged.log" 2>/dev/null)"
    sleep 0.2
done
setsid slurmctld -D -f "$state/slurm.conf" </dev/null >"$state/slurmctld.out" 2>&1 &
echo $! >>"$state/pids"
setsid slurmd -D -f "$state/slurm.conf" </dev/null >"$state/slurmd.out" 2>&1 &
echo $! >>"$state/pids"

i=0
until [ "$(timeout -k 2 5 sinfo -h -N -p "$PARTITION" -o %t 2>/dev/null)" = idle ]; do
    i=$((i + 1))
    [ $i -le 60 ] || die "the node is not idle after 60 s: $(tail -3 "$state/slurmctld.log" "$state/slurmd.log" 2>&1)"
    sleep 1
done
trap - EXIT
echo "$PARTITION"
