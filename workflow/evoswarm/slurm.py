"""A check before the first SLURM submission: a job with no partition on a cluster that has no default one.

Without it, snakemake-executor-plugin-slurm warns, submits anyway, and every job fails in sbatch
("No partition specified or system default partition") inside a long error block per job.
"""

import subprocess


def default_partition(sinfo_partitions: str) -> str | None:
    """The default partition in `sinfo -h -o %P` output (sinfo marks it with a trailing '*'), else None."""
    return next((p[:-1] for p in sinfo_partitions.split() if p.endswith("*")), None)


def missing_partition(rules_without_partition: set[str]) -> str | None:
    """One line when some rules would be submitted without a partition to a cluster with no default
    partition; None when nothing is missing or sinfo cannot tell (the plugin then decides)."""
    if not rules_without_partition:
        return None
    try:
        listing = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if default_partition(listing) is not None:
        return None
    names = sorted(set(listing.split()))
    return (
        f"no SLURM partition for rule(s) {', '.join(sorted(rules_without_partition))} and this cluster has no "
        f"default partition (it has: {', '.join(names) or 'none'}): pass --default-resources "
        "slurm_partition=<partition> (see profiles/slurm/config.yaml)"
    )
