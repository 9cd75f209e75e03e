"""Jobs: created from job.json on a cluster, queued, run by the cluster's engine, and watched.

States as in Batch AI: queued -> running -> succeeded | failed, and terminating -> failed.

`job create` writes the job's bundle (bundle.py: everything its nodes need) and its row in
state.db, then hands the job to its cluster's engine (engines/base.py), all or nothing: a create
interrupted before the engine has the job leaves a job that the next look fails with the reason.
The job's runner reports its start and end into the bundle; every read of a job folds those
reports into state.db (reports.fold) and asks the engine, once for all the jobs read, whether any
active job's runner is gone without reporting an end (killed, machine rebooted, a Slurm job
cancelled outside batchai): such a job is marked failed with an error saying so, so no job stays
"running" forever.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator

from batchai_cli import bundle as bundles
from batchai_cli import engines, ids, log, models, reports, state
from batchai_cli.bundle import Bundle
from batchai_cli.engines.base import Cluster, Submitted
from batchai_cli.errors import AlreadyExists, BatchAIError, InvalidState
from batchai_cli.ids import ResourceId
from batchai_cli.models import batchai_error, stop_error
from batchai_cli.services import Session
from batchai_cli.services.workspaces import not_found

PRIORITY = {"high": 0, "normal": 1, "low": 2}
TERMINAL = ("succeeded", "failed")


def job_ref(session: Session, resource_group: str, workspace: str, experiment: str, name: str) -> ResourceId:
    from batchai_cli.services.experiments import experiment_ref

    ids.check_name(name, "job")
    return experiment_ref(session, resource_group, workspace, experiment).child("job", name)


def create_job(
    session: Session,
    rid: ResourceId,
    *,
    config_file: str,
    cluster: ResourceId | None,
    no_container: bool = False,
    strict: bool = False,
    volumes: str | None = None,
    **mount_options,
) -> dict:
    """Queue a job from job.json on a cluster and start its runner; returns at once (queued).

    mount_options are build_job_request's storage and mount keywords (storage_account_name,
    afs_name, bfs_name, nfs_id...). volumes (auto, mount, copy) is how the nodes put Blob
    containers and File shares in place (agent/volumes.py).
    """
    from batchai_cli.config import build_job_request, format_problem, tool_type
    from batchai_cli.storage import paths

    if session.state.get(rid.parent) is None:
        raise not_found(rid.parent, session)
    if session.state.get(rid) is not None:
        raise _exists()
    request, warnings = build_job_request(
        config_file, cluster_id=str(cluster) if cluster else None, strict=strict, **mount_options
    )
    for problem in warnings:
        log.warning("%s", format_problem(problem, config_file))
    properties = request["properties"]
    _absolute_local_paths(properties, os.path.dirname(os.path.abspath(config_file)))
    cluster_rid = ids.parse(properties["cluster"]["id"], expect="cluster")
    cluster_body = session.state.get(cluster_rid)
    if cluster_body is None:
        raise not_found(cluster_rid, session)
    properties["cluster"] = {"id": cluster_body["id"]}
    cluster = Cluster(cluster_rid, cluster_body, session.state.get_private(cluster_rid))
    engine = engines.for_cluster(cluster_body)
    engine.check_fits(cluster, int(properties["nodeCount"]))
    cluster_properties = cluster.properties
    for line in paths.check_endpoints(paths.job_volumes(properties, cluster_properties)):
        log.info("Storage endpoint of %s", line)
    options = {"container": _container(properties, no_container), "volumes": volumes}
    stamp = state.now_iso()
    segment = (
        f"{rid.subscription}/{rid.resource_group}/workspaces/{rid.get('workspace')}/experiments/"
        f"{rid.get('experiment')}/jobs/{rid.name}/{uuid.uuid4()}"
    )
    body = {
        **properties,
        "creationTime": stamp,
        "executionInfo": None,
        "executionState": "queued",
        "executionStateTransitionTime": stamp,
        "id": str(rid),
        "jobOutputDirectoryPathSegment": segment,
        "name": rid.name,
        "provisioningState": "succeeded",
        "provisioningStateTransitionTime": stamp,
        "toolType": tool_type(properties),
        "type": rid.type,
    }
    if no_container and properties.get("containerSettings"):
        body["noContainer"] = True  # containerSettings are kept as the file had them; they were not used
    job_bundle = Bundle.of(body)
    job_bundle.create()
    job_bundle.write(
        bundles.REQUEST,
        {
            "id": str(rid),
            "body": models.without_secrets(body),
            "properties": properties,
            "options": options,
            # Of the cluster, the nodes need its volumes only (never its admin password).
            "cluster": {"id": cluster_body["id"], "properties": _node_side(cluster_properties or {})},
        },
    )
    try:
        session.state.create_job(
            rid,
            models.without_secrets(body),
            cluster_key=cluster_rid.key,
            priority=PRIORITY.get(properties.get("schedulingPriority"), 1),
            node_count=int(properties["nodeCount"]),
            private={"properties": properties, "options": options},
            runner=submitter_handle(),
        )
    except state.DuplicateResource:
        raise _exists() from None
    except state.MissingParent:
        raise not_found(rid.parent, session) from None
    try:
        handle = engine.submit(Submitted(rid, rid.name, cluster, job_bundle.path, properties))
    except BatchAIError as exc:
        job_bundle.request_stop("JobStartFailed")
        _end(session, rid, [batchai_error("JobStartFailed", f"Could not start the job: {exc.message}")])
        raise BatchAIError(f"Could not start the job: {exc.message}", hint=exc.hint) from None
    except BaseException:
        # Interrupted (Ctrl-C) before the engine had the job: all or nothing, so no job is left.
        job_bundle.request_stop("JobStartFailed")
        with contextlib.suppress(Exception):
            session.state.delete(rid)
        raise
    with contextlib.suppress(state.MissingResource):
        session.state.update_job(rid, runner=handle)
    return get_job(session, rid)


def _node_side(cluster_properties: dict) -> dict:
    mounts = (cluster_properties.get("nodeSetup") or {}).get("mountVolumes")
    return {"nodeSetup": {"mountVolumes": mounts}} if mounts else {}


def _absolute_local_paths(properties: dict, base: str) -> None:
    """Local folders given as relative paths are relative to job.json's folder (like a compose file's),
    made absolute here so the job and `job file` commands agree wherever they run from."""

    def absolute(path: str | None) -> str | None:
        if not path or path.startswith(("$", "/", "~")) or "://" in path:
            return path
        return os.path.normpath(os.path.join(base, path))

    properties["stdOutErrPathPrefix"] = absolute(properties.get("stdOutErrPathPrefix"))
    for directory in properties.get("outputDirectories") or []:
        directory["pathPrefix"] = absolute(directory.get("pathPrefix"))
    for directory in properties.get("inputDirectories") or []:
        directory["path"] = absolute(directory.get("path"))
    for folder in (properties.get("mountVolumes") or {}).get("localFolders") or []:
        folder["path"] = absolute(folder.get("path"))


def _exists() -> AlreadyExists:
    return AlreadyExists(
        "A job with given name, experiment, workspace and resource group already exists.",
        hint="Choose another name, or delete the existing job first.",
    )


def _container(properties: dict, no_container: bool) -> dict | None:
    settings = properties.get("containerSettings")
    if not settings:
        return None
    from batchai_cli.agent.containers import effective_image, require_runtime

    image = effective_image(settings)
    if no_container:
        log.warning("Running on the host, not in the container image %s, as --no-container asks.", image)
        return None
    runtime = require_runtime(image)
    registry = settings.get("imageSourceRegistry") or {}
    return {
        "image": image,
        "runtime": runtime.name,
        "shmSize": settings.get("shmSize"),
        "serverUrl": registry.get("serverUrl"),
    }


class _Ended(Exception):
    """The job's end is already recorded."""


def _end(session: Session, rid: ResourceId, errors: list[dict]) -> None:
    """Mark a job failed from outside its runner (the runner is gone), unless it has ended already."""
    stamp = state.now_iso()

    def change(body: dict, run: dict) -> dict:
        if run["phase"] not in state.ACTIVE_PHASES:
            raise _Ended
        info = body.get("executionInfo") or {}
        body["executionState"] = "failed"
        body["executionStateTransitionTime"] = stamp
        body["executionInfo"] = {
            "startTime": info.get("startTime"),
            "endTime": stamp,
            "exitCode": None,
            "errors": (info.get("errors") or []) + errors,
        }
        return body

    with contextlib.suppress(state.MissingResource, _Ended):
        session.state.update_job(rid, change, phase="ended", nodes=[])


# -- reading: reports folded, lost jobs found -------------------------------------------------


def refresh(session: Session, runs: list[dict]) -> list[dict]:
    """Bring active runs up to date: fold their reports into state.db, then end those whose runner
    is gone without reporting (the engine asked once for all of them). Returns the runs still
    active."""
    changed_clusters: set[str] = set()
    pending = []
    for run in runs:
        if run["phase"] not in state.ACTIVE_PHASES:
            continue
        rid = _job_rid(session, run)
        if rid is not None and reports.fold(session.state, rid):
            changed_clusters.add(run["cluster_key"])
            current = session.state.get_run(rid.key)
            if current is None or current["phase"] not in state.ACTIVE_PHASES:
                continue
            run = current
        pending.append(run)
    alive = []
    for cluster_key, group in _by_cluster(pending).items():
        engine = _engine_of(session, cluster_key)
        lost = _interrupted_creates(group)
        rest = [run for run in group if run["job_key"] not in lost]
        lost.update(engine.lost(rest) if rest else {})
        for run in group:
            errors = lost.get(run["job_key"])
            rid = _job_rid(session, run)
            if not errors or rid is None:
                alive.append(run)
                continue
            if reports.fold(session.state, rid):  # the end was reported meanwhile
                changed_clusters.add(cluster_key)
                continue
            body = session.state.get(rid)
            if body is not None:
                Bundle.of(body).request_stop("JobStartFailed" if errors[0]["code"] == "JobStartFailed" else "lost")
            _end(session, rid, errors)
            if body is not None:
                engine.after_lost(run, body)
            changed_clusters.add(cluster_key)
    for cluster_key in changed_clusters:
        engine = _engine_of(session, cluster_key)
        engine.wake(session.state, cluster_key)
    return alive


def submitter_handle() -> dict:
    """The handle a job has while its `job create` (this process) hands it to the engine."""
    from batchai_cli.procs import process_start

    return {"submitter": {"pid": os.getpid(), "start": process_start(os.getpid())}, "host": socket.gethostname()}


def _interrupted_creates(runs: list[dict]) -> dict[str, list[dict]]:
    """Runs whose `job create` is gone while it still had the job (before the engine took it)."""
    from batchai_cli.procs import process_alive

    lost = {}
    for run in runs:
        submitter = (run.get("runner") or {}).get("submitter")
        if submitter and not process_alive(submitter["pid"], submitter.get("start")):
            lost[run["job_key"]] = [
                batchai_error(
                    "JobStartFailed",
                    "The `batchai job create` that submitted this job was interrupted before the job was handed "
                    "to its cluster; the job never ran. Create it again.",
                )
            ]
    return lost


def _job_rid(session: Session, run: dict) -> ResourceId | None:
    job_id = session.state.get_key_id(run["job_key"])
    return ids.parse(job_id, expect="job") if job_id else None


def _by_cluster(runs: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for run in runs:
        groups.setdefault(run["cluster_key"], []).append(run)
    return groups


def _engine_of(session: Session, cluster_key: str):
    """The engine of the cluster with this key (the local engine's checks when the cluster is gone:
    they find nothing to do for another engine's handles)."""
    cluster_id = session.state.get_key_id(cluster_key)
    body = session.state.get(ids.parse(cluster_id, expect="cluster")) if cluster_id else None
    return engines.for_cluster(body) if body is not None else engines.by_name("local")


def cluster_engine(session: Session, cluster_rid: ResourceId):
    """(engine, Cluster) of a cluster that exists (services.clusters has the one lookup)."""
    from batchai_cli.services.clusters import cluster_engine as lookup

    return lookup(session, cluster_rid)


def reconcile_cluster(session: Session, cluster_rid: ResourceId) -> list[dict]:
    """The active runs on a cluster, brought up to date (refresh)."""
    return refresh(session, session.state.runs(cluster_key=cluster_rid.key))


def wake_queue(session: Session, cluster_rid: ResourceId) -> None:
    engine, _cluster = cluster_engine(session, cluster_rid)
    engine.wake(session.state, cluster_rid.key)


def get_job(session: Session, rid: ResourceId) -> dict:
    body = session.state.get(rid)
    if body is None:
        raise not_found(rid, session)
    run = session.state.get_run(rid.key)
    if run and run["phase"] in state.ACTIVE_PHASES:
        refresh(session, [run])
        body = session.state.get(rid) or body
    return present(body)


def present(body: dict) -> dict:
    view = models.present(body, models.JOB)
    if view.get("constraints"):
        view["constraints"] = {
            **view["constraints"],
            "maxWallClockTime": models.timespan_text(view["constraints"].get("maxWallClockTime")),
        }
    return view


def list_jobs(session: Session, experiment: ResourceId) -> list[dict]:
    if session.state.get(experiment) is None:
        raise not_found(experiment, session)
    bodies = session.state.list("job", parent=experiment)
    active = [body for body in bodies if body.get("executionState") not in TERMINAL]
    runs = [run for body in active if (run := session.state.get_run(ids.parse(body["id"]).key))]
    if runs:
        refresh(session, runs)
        bodies = session.state.list("job", parent=experiment)
    return [present(body) for body in bodies]


def terminate_job(session: Session, rid: ResourceId, *, reason: str = "JobTerminated") -> None:
    """Stop every process of the job on every node. A queued job ends before it starts; an ended
    job is left as it is. `reason` is the error code the job ends with (models.STOP_MESSAGES:
    JobTerminated, or ClusterDeleted for `cluster delete`)."""
    get_job(session, rid)
    run = session.state.get_run(rid.key)
    body = session.state.get(rid)
    if run is None or body is None or run["phase"] not in state.ACTIVE_PHASES:
        return
    stamp = state.now_iso()
    # Written before the phase changes, so a runner that sees the job terminating finds the reason.
    Bundle.of(body).request_stop(reason)

    def change(body: dict, _run: dict) -> dict:
        body["executionState"] = "terminating"
        body["executionStateTransitionTime"] = stamp
        return body

    session.state.update_job(rid, change, phase="terminating")
    engine = _engine_of(session, run["cluster_key"])
    if engine.terminate(run.get("runner") or {}):
        _end(session, rid, [stop_error(reason, started=False)])


def terminate_jobs_on_cluster(session: Session, cluster_rid: ResourceId, *, reason: str) -> None:
    for run in reconcile_cluster(session, cluster_rid):
        job_id = session.state.get_key_id(run["job_key"])
        if job_id:
            terminate_job(session, ids.parse(job_id), reason=reason)


def delete_job(session: Session, rid: ResourceId) -> None:
    """Delete a job; a running job is terminated first, as the service did."""
    terminate_job(session, rid)
    try:
        session.state.delete(rid)
    except state.MissingResource:
        raise not_found(rid, session) from None
    except state.HasChildren:  # pragma: no cover - jobs have no children
        raise InvalidState(f'The job "{rid.name}" cannot be deleted now.') from None


def wait_events(
    session: Session, rid: ResourceId, *, interval: float = 0.5, timeout: float | None = None
) -> Iterator[tuple[str, dict]]:
    """Follow a job to its end: yields ("submitted" | "started" | "state" | "end", job) as az's
    `job wait` reported them. Raises NotFound if the job is deleted meanwhile."""
    job = get_job(session, rid)
    yield "submitted", job
    started = False
    last_state = None
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        if job.get("executionInfo") and job["executionInfo"].get("startTime") and not started:
            started = True
            yield "started", job
        if job["executionState"] != last_state:
            last_state = job["executionState"]
            yield "state", job
        if job["executionState"] in TERMINAL:
            yield "end", job
            return
        if deadline and time.monotonic() > deadline:
            yield "timeout", job
            return
        time.sleep(interval)
        job = get_job(session, rid)


def list_remote_login_information(session: Session, rid: ResourceId) -> list[dict]:
    """The nodes a job runs on (none once it has ended), as az's remote login list."""
    job = get_job(session, rid)
    run = session.state.get_run(rid.key)
    if not run or not run["nodes"]:
        return []
    engine, cluster = cluster_engine(session, ids.parse(job["cluster"]["id"], expect="cluster"))
    launch = Bundle.of(session.state.get(rid) or {}).read(bundles.LAUNCH)
    return engine.job_nodes(cluster, run, launch)
