"""A dead agent's logs: every byte a job wrote first lands in the node's spool (agent/logs.py), so
an agent killed before it shipped them leaves them there. Whoever finds the agent dead (the job's
runner) ships the rest, so a killed agent loses no output:

    python -m batchai_cli.agent recover <job-id> <task-index> <node-id> <bundle>

It runs on the dead agent's node (the local engine runs it in place; under Slurm the runner starts
it there with `srun --overlap`). For each spool file it appends what storage lacks, from the size
storage has, and notes the recovery in the node's execution log.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from batchai_cli import bundle as bundles
from batchai_cli import ids
from batchai_cli.agent import layout
from batchai_cli.storage import paths
from batchai_cli.storage.base import Store, join_path

CHUNK = 4 * 1024 * 1024


def stdouterr_target(request: dict) -> tuple[Store, str]:
    """The store and folder of a job's stdouterr files, as the agent resolves them."""
    cluster_properties = (request.get("cluster") or {}).get("properties") or {}
    volumes = paths.job_volumes(request["properties"], cluster_properties)
    store, key = paths.resolve(request["properties"]["stdOutErrPathPrefix"], volumes)
    segment = request["body"]["jobOutputDirectoryPathSegment"]
    return store, "/".join(part for part in (key, segment, "stdouterr") if part)


def ship_spool(spool: str, store: Store, directory: str) -> tuple[int, list[str]]:
    """Append to each file in `directory` what its spool file has beyond the file's size in
    storage. Returns (bytes shipped, problems)."""
    shipped, problems = 0, []
    try:
        names = sorted(os.listdir(spool))
    except FileNotFoundError:
        return 0, []
    for name in names:
        path = os.path.join(spool, name)
        key = join_path(directory, name)
        try:
            offset = _stored_size(store, key)
            size = os.path.getsize(path)
            with open(path, "rb") as handle:
                handle.seek(offset)
                while offset < size:
                    data = handle.read(min(CHUNK, size - offset))
                    if not data:
                        break
                    offset = store.append(key, data, offset)
                    shipped += len(data)
        except Exception as exc:  # the others may still go
            problems.append(f"{name}: {exc}")
    return shipped, problems


def _stored_size(store: Store, key: str) -> int:
    try:
        return store.stat(key).size
    except FileNotFoundError:
        return 0


def recover(job_id: str, task_index: int, node_id: str, bundle_path: str) -> int:
    job_bundle = bundles.adopt(bundle_path)
    request = job_bundle.request()
    rid = ids.parse(request["id"], expect="job")
    if str(rid) != job_id:
        raise SystemExit(f"The bundle {bundle_path} is job {rid}'s, not {job_id}'s.")
    spool = layout.spool_dir(node_id, rid)
    store, directory = stdouterr_target(request)
    shipped, problems = ship_spool(spool, store, directory)
    multi = int(request["properties"].get("nodeCount") or 1) > 1
    log_name = f"execution-{node_id}.log" if multi else "execution.log"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    line = (
        f"{stamp} The agent of task {task_index} on node {node_id} died before it reported; {shipped} bytes of "
        f"the job's output it had not shipped were recovered from the node's spool.\n"
    )
    for problem in problems:
        line += f"{stamp} Could not recover {problem}\n"
    key = join_path(directory, log_name)
    try:
        store.append(key, line.encode(), _stored_size(store, key))
    except Exception as exc:
        problems.append(f"{log_name}: {exc}")
    for problem in problems:
        print(f"warning: {problem}", flush=True)
    return 1 if problems else 0
