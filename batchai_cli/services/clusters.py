"""Clusters: a named set of nodes in a workspace, with an engine that runs jobs on them.

A `local` cluster's nodes are slots on this machine, as many as its scale settings say; a job
holds whole nodes while it runs (gang scheduled, one job per node). What `cluster show` reports
about nodes (currentNodeCount, nodeStateCounts, allocationState) is computed from the jobs that
hold or wait for them, so it is always true rather than remembered.

A `slurm` cluster's nodes are the nodes of its Slurm partition (engine.partition, else Slurm's
default one), whatever its scale settings say (they are kept and shown): `cluster show` counts
them from sinfo, `cluster node list` lists them, and a job may ask for at most as many.

What differs between engines is behind the Engine contract (engines/base.py); nothing here asks
which engine a cluster has.
"""

from __future__ import annotations

import uuid

from batchai_cli import engines, ids, log, models, state
from batchai_cli.engines.base import Cluster
from batchai_cli.errors import AlreadyExists, InvalidState, UsageError
from batchai_cli.ids import ResourceId
from batchai_cli.services import Session
from batchai_cli.services.workspaces import not_found, workspace_ref

ENGINES = engines.ENGINES


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
    _check_file_servers(properties)
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
    engine, cluster = cluster_engine(session, rid)
    engine.created(cluster, session.state)
    return get_cluster(session, rid)


def cluster_engine(session: Session, rid: ResourceId):
    """(engine, Cluster) of an existing cluster."""
    body = session.state.get(rid)
    if body is None:
        raise not_found(rid, session)
    return engines.for_cluster(body), Cluster(rid, body, session.state.get_private(rid))


def _exists(rid: ResourceId) -> AlreadyExists:
    # az said '"x" already exists in "rg" resource group under ws resource group.' (sic).
    return AlreadyExists(
        f'"{rid.name}" already exists in workspace "{rid.get("workspace")}" (resource group "{rid.resource_group}").',
        hint="Choose another name, or delete the existing cluster first.",
    )


def _check_file_servers(properties: dict) -> None:
    """Every file server the cluster mounts exists (caught here, not on each node)."""
    from batchai_cli.storage import paths

    for volume in paths.job_volumes({}, properties):
        if volume.kind == "fileServer":
            paths.file_server_source(volume)


def _check_engine(properties: dict) -> None:
    engine = properties.get("engine") or {}
    engines.by_name(engine.get("type", "local")).check_cluster(properties)


# -- the live view ------------------------------------------------------------------------------


def live_view(cluster: Cluster, runs: list[dict]) -> dict:
    """The cluster as az shows it, with node counts from its engine: for a local cluster, from the
    jobs that hold or wait for its nodes and the setup task's progress on each node; for a slurm
    one, from sinfo."""
    nodes = engines.for_cluster(cluster.body).node_view(cluster, runs)
    view = dict(cluster.body)
    view["currentNodeCount"] = nodes.current
    view["nodeStateCounts"] = {f"{kind}NodeCount": nodes.counts.get(kind, 0) for kind in NODE_KINDS}
    view["errors"] = nodes.errors
    if nodes.resizing:
        view["allocationState"] = "resizing"
    return models.present(view, models.CLUSTER)


NODE_KINDS = ("idle", "leaving", "preparing", "running", "unusable")


def get_cluster(session: Session, rid: ResourceId) -> dict:
    body = session.state.get(rid)
    if body is None:
        raise not_found(rid, session)
    from batchai_cli.services.jobs import reconcile_cluster

    runs = reconcile_cluster(session, rid)
    return live_view(Cluster(rid, body, session.state.get_private(rid)), runs)


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
        session.state.update(rid, change)
    except state.MissingResource:
        raise not_found(rid, session) from None
    engine, cluster = cluster_engine(session, rid)
    engine.rescaled(cluster, session.state)
    engine.wake(session.state, rid.key)  # queued jobs may fit now
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


def delete_cluster(session: Session, rid: ResourceId) -> None:
    """Delete a cluster. Jobs still queued or running on it are terminated first, as the service did."""
    if session.state.get(rid) is None:
        raise not_found(rid, session)
    from batchai_cli.services.jobs import terminate_jobs_on_cluster

    terminate_jobs_on_cluster(session, rid, reason="ClusterDeleted")
    engine, cluster = cluster_engine(session, rid)
    engine.deleting(cluster, session.state)
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
    engine, cluster = cluster_engine(session, rid)
    return engine.nodes(cluster, view["currentNodeCount"])
