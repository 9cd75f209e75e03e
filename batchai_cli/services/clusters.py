"""Clusters: a named set of nodes in a workspace, with an engine that runs jobs on them.

A `local` cluster's nodes are slots on this machine, as many as its scale settings say; a job
holds whole nodes while it runs (gang scheduled, one job per node). What `cluster show` reports
about nodes (currentNodeCount, nodeStateCounts, allocationState) is computed from the jobs that
hold or wait for them, so it is always true rather than remembered.

A `slurm` cluster's nodes are the nodes of its Slurm partition (engine.partition, else Slurm's
default one), whatever its scale settings say (they are kept and shown): `cluster show` counts
them from sinfo, `cluster node list` lists them, and a job may ask for at most as many.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid

from batchai_cli import ids, log, models, state
from batchai_cli.errors import AlreadyExists, BatchAIError, InvalidState, UsageError
from batchai_cli.ids import ResourceId
from batchai_cli.services import Session
from batchai_cli.services.workspaces import not_found, workspace_ref

ENGINES = ("local", "slurm")


def cluster_ref(session: Session, resource_group: str, workspace: str, name: str) -> ResourceId:
    ids.check_name(name, "cluster")
    return workspace_ref(session, resource_group, workspace).child("cluster", name)


def resolve_cluster(session: Session, value: str, *, resource_group: str, workspace: str) -> ResourceId:
    """-c takes a cluster name (in the job's workspace) or a cluster's full id (any workspace), as az."""
    if value.startswith("/"):
        return ids.parse(value, expect="cluster")
    return cluster_ref(session, resource_group, workspace, value)


def create_cluster(
    session: Session, rid: ResourceId, *, config_file: str | None = None, use_auto_storage: bool = False, **options
) -> dict:
    """Create a cluster from cluster.json and/or options, patched as `az batchai cluster create` did.

    `options` are build_cluster_request's keywords (vm_size, target, min_nodes, afs_name, engine...).
    use_auto_storage creates and mounts az's auto-storage share and container (services/autostorage.py).
    """
    from batchai_cli.config import build_cluster_request, format_problem

    workspace = session.state.get(rid.parent)
    if workspace is None:
        raise not_found(rid.parent, session)
    if session.state.get(rid) is not None:
        raise _exists(rid)
    if use_auto_storage:
        from batchai_cli.services.autostorage import auto_storage_options

        options = auto_storage_options(options)
    request, warnings = build_cluster_request(config_file, **options)
    for problem in warnings:
        log.warning("%s", format_problem(problem, config_file))
    properties = request["properties"]
    _check_engine(properties)
    stamp = state.now_iso()
    setup = (properties.get("nodeSetup") or {}).get("setupTask")
    if setup:
        setup["stdOutErrPathSuffix"] = (
            f"{rid.subscription}/{rid.resource_group}/workspaces/{rid.get('workspace')}"
            f"/clusters/{rid.name}/{uuid.uuid4()}"
        )
    body = {
        **properties,
        "allocationState": "steady",
        "allocationStateTransitionTime": stamp,
        "creationTime": stamp,
        "errors": None,
        "id": str(rid),
        "name": rid.name,
        "provisioningState": "succeeded",
        "provisioningStateTransitionTime": stamp,
        "type": rid.type,
    }
    try:
        session.state.create(rid, models.without_secrets(body), private={"properties": properties})
    except state.DuplicateResource:
        raise _exists(rid) from None
    except state.MissingParent:
        raise not_found(rid.parent, session) from None
    _set_up_new_nodes(session, rid)
    return get_cluster(session, rid)


def _set_up_new_nodes(session: Session, rid: ResourceId) -> None:
    """Run the setup task on the nodes that have not had it (all of them, at creation)."""
    private = session.state.get_private(rid)
    if not ((private.get("properties") or {}).get("nodeSetup") or {}).get("setupTask"):
        return
    capacity, _ = node_capacity(session.state.get(rid))
    done = private.get("nodes") or {}
    new = [index for index in range(capacity) if str(index) not in done]
    if not new:
        return
    import os

    from batchai_cli.engines import process_start, python_module, spawn_detached
    from batchai_cli.settings import ensure_home

    log_path = os.path.join(ensure_home(), "setup.log")
    pid = spawn_detached(python_module("batchai_cli.engines.setup", str(rid), *map(str, new)), log_path)
    process = {"pid": pid, "start": process_start(pid)}

    def change(current: dict) -> dict:
        nodes = current.setdefault("nodes", {})
        for index in new:
            nodes.setdefault(str(index), {"state": "preparing", "error": None, "process": process})
        return current

    session.state.update_private(rid, change)


def node_states(private: dict) -> dict[int, dict]:
    """Each set-up node's state (preparing | idle | unusable); a preparing node whose setup process
    died is unusable."""
    from batchai_cli.engines import process_alive

    result = {}
    for key, node in (private.get("nodes") or {}).items():
        node = dict(node)
        process = node.get("process") or {}
        if node["state"] == "preparing" and process and not process_alive(process["pid"], process.get("start")):
            node = {
                "state": "unusable",
                "error": models.batchai_error(
                    "SetupTaskFailed", "The setup task's process ended without reporting (it was killed or crashed)."
                ),
            }
        result[int(key)] = node
    return result


def usable_nodes(body: dict, private: dict) -> list[int]:
    """The nodes jobs may be placed on: allocated, and not preparing or unusable."""
    capacity, _ = node_capacity(body)
    states = node_states(private)
    return [index for index in range(capacity) if states.get(index, {}).get("state", "idle") == "idle"]


def _exists(rid: ResourceId) -> AlreadyExists:
    # az said '"x" already exists in "rg" resource group under ws resource group.' (sic).
    return AlreadyExists(
        f'"{rid.name}" already exists in workspace "{rid.get("workspace")}" (resource group "{rid.resource_group}").',
        hint="Choose another name, or delete the existing cluster first.",
    )


def _check_engine(properties: dict) -> None:
    engine = properties.get("engine") or {}
    kind = engine.get("type", "local")
    if kind not in ENGINES:
        raise UsageError(f"Unknown engine '{kind}'.", hint=f"Choose one of: {', '.join(ENGINES)}.")
    if kind == "slurm":
        import shutil

        if not shutil.which("sbatch"):
            raise BatchAIError(
                "The slurm engine needs Slurm's sbatch and srun on this machine, and they are not on PATH.",
                hint="Install Slurm (apt-get install slurm-wlm) or use --engine local.",
            )
        if (properties.get("nodeSetup") or {}).get("setupTask"):
            raise BatchAIError(
                "A slurm cluster does not run nodeSetup.setupTask: batchai does not own its nodes.",
                hint="Prepare the partition's nodes yourself (e.g. with srun), and remove setupTask from cluster.json.",
            )
        from batchai_cli.engines import slurm

        slurm.partition_nodes(engine.get("partition"))  # the partition exists, and Slurm answers


def is_slurm(body: dict) -> bool:
    return (body.get("engine") or {}).get("type") == "slurm"


def check_fits_slurm(rid: ResourceId, body: dict, needed: int) -> None:
    """A job on a slurm cluster may use at most every node of the partition (Slurm would keep a
    larger one pending for ever)."""
    from batchai_cli.engines import slurm

    partition = (body.get("engine") or {}).get("partition")
    size = slurm.partition_size(partition)
    if needed > size:
        raise BatchAIError(
            f'The job needs {needed} node{"s" if needed != 1 else ""}, but cluster "{rid.name}" runs on Slurm '
            f'partition "{partition or slurm.default_partition()}", which has {size}.',
            hint="Lower nodeCount, or use a cluster on a larger partition (sinfo -s lists them).",
        )


# -- the live view ------------------------------------------------------------------------------


def node_capacity(body: dict) -> tuple[int, int]:
    """(nodes jobs may be placed on, nodes currently allocated with no demand) for a cluster body.

    Manual scale: the target count, both. Auto-scale: up to the maximum; allocated follows demand.
    """
    scale = body.get("scaleSettings") or {}
    if scale.get("autoScale"):
        auto = scale["autoScale"]
        return int(auto["maximumNodeCount"]), int(auto["minimumNodeCount"])
    target = int((scale.get("manual") or {}).get("targetNodeCount") or 0)
    return target, target


def node_ids(rid: ResourceId, body: dict, count: int) -> list[str]:
    """Stable node ids in Batch AI's style: tvm-<cluster hash>_<n>-<creation time>."""
    digest = int(hashlib.sha256(rid.key.encode()).hexdigest()[:8], 16) % 10**10
    stamp = (body.get("creationTime") or "")[:19].replace("-", "").replace(":", "").lower()
    return [f"tvm-{digest}_{index + 1}-{stamp}z" for index in range(count)]


def live_view(rid: ResourceId, body: dict, runs: list[dict], private: dict | None = None) -> dict:
    """The cluster as az shows it, with node counts from the jobs that hold or wait for its nodes
    and from the setup task's progress on each node."""
    if is_slurm(body):
        return _slurm_view(body)
    capacity, floor = node_capacity(body)
    held = [node for run in runs if run["phase"] in ("running", "terminating") for node in run["nodes"]]
    scale = body.get("scaleSettings") or {}
    if scale.get("autoScale"):
        demand = sum(run["node_count"] for run in runs)
        current = max(floor, min(capacity, demand))
        current = max(current, max(held, default=-1) + 1)
    else:
        current = capacity
    running = sum(1 for node in held if node < current)
    leaving = sum(1 for node in held if node >= current)
    states = node_states(private or {})
    # Over the nodes that have a state, not over the count: a cluster resized to millions of
    # nodes that no job fills costs nothing to show.
    preparing = sum(1 for index, node in states.items() if index < current and node.get("state") == "preparing")
    unusable = sum(1 for index, node in states.items() if index < current and node.get("state") == "unusable")
    view = dict(body)
    view["currentNodeCount"] = current + leaving
    view["nodeStateCounts"] = {
        "idleNodeCount": max(0, current - running - preparing - unusable),
        "leavingNodeCount": leaving,
        "preparingNodeCount": preparing,
        "runningNodeCount": running,
        "unusableNodeCount": unusable,
    }
    errors = [node["error"] for index, node in sorted(states.items()) if node.get("error") and index < current]
    view["errors"] = errors or None
    if leaving:
        view["allocationState"] = "resizing"
    return models.present(view, models.CLUSTER)


SLURM_STATES = ("idle", "running", "preparing", "leaving", "unusable")


def _slurm_view(body: dict) -> dict:
    """A slurm cluster as az shows it: its partition's nodes and their states from sinfo (idle;
    allocated, mixed or completing: running; powering up: preparing; draining: leaving; down,
    drained, not responding...: unusable). Nodes busy with any job of the partition count as running."""
    from batchai_cli.engines import slurm

    view = dict(body)
    try:
        nodes = slurm.partition_nodes((body.get("engine") or {}).get("partition"))
        errors = None
    except BatchAIError as exc:
        log.warning("%s", exc)
        nodes = []
        errors = [{"code": "SlurmNotAnswering", "message": str(exc), "details": None}]
    counts = dict.fromkeys(SLURM_STATES, 0)
    for _name, node_state in nodes:
        counts[slurm.node_state_kind(node_state)] += 1
    view["currentNodeCount"] = len(nodes)
    view["nodeStateCounts"] = {f"{kind}NodeCount": counts[kind] for kind in SLURM_STATES}
    view["errors"] = errors
    if counts["leaving"] or counts["preparing"]:
        view["allocationState"] = "resizing"
    return models.present(view, models.CLUSTER)


def slurm_nodes(body: dict, names: list[str] | None = None) -> list[dict]:
    """Nodes of a slurm cluster's partition (or the named ones) as az's remote login list."""
    from batchai_cli.engines import slurm

    if names is None:
        names = [name for name, _state in slurm.partition_nodes((body.get("engine") or {}).get("partition"))]
    addresses = slurm.node_addresses(names) if names else {}
    return [{"ipAddress": addresses.get(name, name), "nodeId": name, "port": 22} for name in names]


def get_cluster(session: Session, rid: ResourceId) -> dict:
    body = session.state.get(rid)
    if body is None:
        raise not_found(rid, session)
    from batchai_cli.services.jobs import reconcile_cluster

    runs = reconcile_cluster(session, rid)
    return live_view(rid, body, runs, session.state.get_private(rid))


def list_clusters(session: Session, workspace: ResourceId) -> list[dict]:
    if session.state.get(workspace) is None:
        raise not_found(workspace, session)
    return [get_cluster(session, ids.parse(body["id"])) for body in session.state.list("cluster", parent=workspace)]


def _rescale(session: Session, rid: ResourceId, scale: dict) -> dict:
    def change(body: dict) -> dict:
        body["scaleSettings"] = scale
        body["allocationStateTransitionTime"] = state.now_iso()
        return body

    try:
        body = session.state.update(rid, change)
    except state.MissingResource:
        raise not_found(rid, session) from None
    if is_slurm(body):
        log.warning(
            'Cluster "%s" runs on Slurm: its scale settings are kept, but the partition\'s nodes decide '
            "where jobs run.",
            rid.name,
        )
    _set_up_new_nodes(session, rid)
    # Queued jobs may fit now.
    from batchai_cli.services.jobs import wake_queue

    wake_queue(session, rid)
    return get_cluster(session, rid)


def resize_cluster(session: Session, rid: ResourceId, target: int) -> dict:
    """Manual scale to `target` nodes. Jobs already running on nodes beyond it finish there (the
    nodes show as leaving until then); new jobs are placed on the remaining nodes only."""
    from batchai_cli.config.nodes import MAX_NODE_COUNT

    if not 0 <= target <= MAX_NODE_COUNT:
        raise UsageError(f"--target must be from 0 to {MAX_NODE_COUNT}, not {target}.")
    body = get_cluster(session, rid)
    option = ((body.get("scaleSettings") or {}).get("manual") or {}).get("nodeDeallocationOption") or "requeue"
    return _rescale(session, rid, {"manual": {"nodeDeallocationOption": option, "targetNodeCount": target}})


def auto_scale_cluster(session: Session, rid: ResourceId, minimum: int, maximum: int) -> dict:
    """Auto-scale between `minimum` and `maximum` nodes, following the jobs queued and running."""
    from batchai_cli.config.nodes import MAX_NODE_COUNT

    if not (0 <= minimum <= MAX_NODE_COUNT and 0 <= maximum <= MAX_NODE_COUNT):
        raise UsageError(f"--min and --max must be from 0 to {MAX_NODE_COUNT}.")
    if minimum > maximum:
        raise UsageError("Maximum nodes count must be greater or equal to minimum nodes count")
    get_cluster(session, rid)
    return _rescale(
        session, rid, {"autoScale": {"initialNodeCount": 0, "maximumNodeCount": maximum, "minimumNodeCount": minimum}}
    )


def _stop_setup(session: Session, rid: ResourceId) -> None:
    """Stop setup tasks still running on the cluster's nodes (their process group, tasks included)."""
    import os
    import signal

    from batchai_cli.engines import process_alive

    stopped = set()
    for node in (session.state.get_private(rid).get("nodes") or {}).values():
        process = node.get("process") or {}
        pid = process.get("pid")
        if node.get("state") == "preparing" and pid and pid not in stopped and process_alive(pid, process.get("start")):
            stopped.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)


def delete_cluster(session: Session, rid: ResourceId) -> None:
    """Delete a cluster. Jobs still queued or running on it are terminated first, as the service did."""
    if session.state.get(rid) is None:
        raise not_found(rid, session)
    from batchai_cli.services.jobs import terminate_jobs_on_cluster

    terminate_jobs_on_cluster(session, rid, reason="ClusterDeleted")
    _stop_setup(session, rid)
    body = session.state.get(rid) or {}
    if not is_slurm(body):
        from batchai_cli.agent.volumes import release_cluster

        # Cluster-level volumes stay mounted for the nodes' life, which ends here.
        for problem in release_cluster(node_ids(rid, body, 1), lambda text: log.info("%s", text)):
            log.warning("%s", problem)
    try:
        session.state.delete(rid)
    except state.MissingResource:
        raise not_found(rid, session) from None
    except state.HasChildren:  # pragma: no cover - clusters have no children
        raise InvalidState(f'The cluster "{rid.name}" cannot be deleted now.') from None


def list_remote_login_information(session: Session, rid: ResourceId) -> list[dict]:
    """The nodes of a cluster: az's remote login list (nodeId, ipAddress, port). Local nodes are
    this machine, reached over SSH on its usual port; a slurm cluster's are its partition's."""
    view = get_cluster(session, rid)
    if is_slurm(view):
        return slurm_nodes(view)
    return [
        {"ipAddress": "127.0.0.1", "nodeId": node, "port": 22} for node in node_ids(rid, view, view["currentNodeCount"])
    ]
