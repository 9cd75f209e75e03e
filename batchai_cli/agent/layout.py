"""Where a job's things live on this machine, shared by the runner and the agents.

    $BATCHAI_HOME/nodes/<node-id>/mounts                         $AZ_BATCHAI_MOUNT_ROOT (cluster volumes)
    $BATCHAI_HOME/nodes/<node-id>/jobs                           $AZ_BATCHAI_JOB_TEMP_DIR
    $BATCHAI_HOME/nodes/<node-id>/jobs/<ws>/<exp>/<job>          $AZ_BATCHAI_JOB_TEMP
    $BATCHAI_HOME/nodes/<node-id>/jobs/<ws>/<exp>/<job>/mounts   $AZ_BATCHAI_JOB_MOUNT_ROOT
    <shared root>/jobs/<job uuid>                                the job's bundle (bundle.py): the request,
                                                                 the reports, the agents' results;
                                                                 $AZ_BATCHAI_SHARED_JOB_TEMP, the MPI host file

The node folders are the node's own; only the shared root (settings.shared_root(), default
$BATCHAI_HOME/shared) must be the same folder on every node of a Slurm cluster.
"""

from __future__ import annotations

import os

from batchai_cli import bundle, settings
from batchai_cli.ids import ResourceId


def shared_dir(body: dict) -> str:
    return bundle.folder_of(body)


def node_root(node_id: str) -> str:
    return os.path.join(settings.home(), "nodes", node_id)


def job_dir(node_id: str, rid: ResourceId) -> str:
    return os.path.join(node_root(node_id), "jobs", rid.get("workspace"), rid.get("experiment"), rid.name)


def result_path(body: dict, task_index: int) -> str:
    return os.path.join(shared_dir(body), f"result-{task_index}.json")


def process_groups_path(body: dict, task_index: int) -> str:
    return os.path.join(shared_dir(body), f"pgids-{task_index}")


def spool_dir(node_id: str, rid: ResourceId) -> str:
    return os.path.join(job_dir(node_id, rid), "spool")


def kill_job_processes(body: dict, task_index: int | None = None) -> None:
    """SIGKILL the process groups the agents of a job recorded (one task's, or all), for when an
    agent or the runner died and can no longer stop them itself."""
    import contextlib
    import glob
    import signal

    pattern = (
        process_groups_path(body, task_index) if task_index is not None else os.path.join(shared_dir(body), "pgids-*")
    )
    for path in glob.glob(pattern):
        try:
            with open(path) as handle:
                groups = handle.read().split()
        except OSError:
            continue
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.killpg(int(group), signal.SIGKILL)
