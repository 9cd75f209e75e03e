"""Engines: where jobs run. services/ gets one from the cluster and calls the Engine contract
(engines/base.py); an engine only schedules a job's runner and agents (DESIGN.md).

`local` (the default): a detached runner per job on this machine, batchai's own queue, nodes as
slots here (engines/local.py). `slurm`: one sbatch per job on a Slurm partition (engines/slurm.py).
Both run the same runner (engines/runner.py) and the same agent, which read only the job's bundle.
"""

from __future__ import annotations

from batchai_cli.errors import UsageError

ENGINES = ("local", "slurm")


def engine_type(cluster_body: dict) -> str:
    return (cluster_body.get("engine") or {}).get("type") or "local"


def by_name(name: str):
    """The engine called `name` (a UsageError naming the known ones otherwise)."""
    if name == "local":
        from batchai_cli.engines.local import LocalEngine

        return LocalEngine()
    if name == "slurm":
        from batchai_cli.engines.slurm import SlurmEngine

        return SlurmEngine()
    raise UsageError(f"Unknown engine '{name}'.", hint=f"Choose one of: {', '.join(ENGINES)}.")


def for_cluster(cluster_body: dict):
    """The engine a cluster runs on (cluster.json's engine.type; local when it has none)."""
    return by_name(engine_type(cluster_body))
