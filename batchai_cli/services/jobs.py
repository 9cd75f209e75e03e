"""Jobs: created from job.json on a cluster, queued, run by the cluster's engine, and watched.

States as in Batch AI: queued -> running -> succeeded | failed, and terminating -> failed. A job's
runner (engines/runner.py) moves it along; if that process dies without recording an end (killed,
machine rebooted), the next look at the job (show, list, wait, cluster show) finds out and marks
the job failed with an error saying so, so no job stays "running" forever.

On a Slurm cluster the runner is the job's Slurm batch job (engines/slurm.py): job create submits
it with sbatch, terminate signals it with scancel (or removes it from Slurm's queue), and a Slurm
job that has ended or vanished without the runner recording the end is found through squeue and
scontrol, and reported with its Slurm job id and state.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator

from batchai_cli import ids, log, models, state
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
    _check_fits(properties, cluster_rid, cluster_body)
    cluster_properties = session.state.get_private(cluster_rid).get("properties")
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
    try:
        session.state.create_job(
            rid,
            models.without_secrets(body),
            cluster_key=cluster_rid.key,
            priority=PRIORITY.get(properties.get("schedulingPriority"), 1),
            node_count=int(properties["nodeCount"]),
            private={"properties": properties, "options": options},
        )
    except state.DuplicateResource:
        raise _exists() from None
    except state.MissingParent:
        raise not_found(rid.parent, session) from None
    _start_runner(session, rid)
    return get_job(session, rid)


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


def _check_fits(properties: dict, cluster_rid: ResourceId, cluster_body: dict) -> None:
    from batchai_cli.services.clusters import check_fits_slurm, is_slurm, node_capacity

    if is_slurm(cluster_body):
        check_fits_slurm(cluster_rid, cluster_body, int(properties["nodeCount"]))
        return
    capacity, _ = node_capacity(cluster_body)
    needed = int(properties["nodeCount"])
    if needed > capacity:
        scale = "auto-scales to at most" if (cluster_body.get("scaleSettings") or {}).get("autoScale") else "has"
        raise BatchAIError(
            f'The job needs {needed} node{"s" if needed != 1 else ""}, but cluster "{cluster_rid.name}" {scale} '
            f"{capacity}.",
            hint=f"Resize it (batchai cluster resize -g {cluster_rid.resource_group} -w {cluster_rid.get('workspace')} "
            f"-n {cluster_rid.name} -t {needed}) or lower nodeCount.",
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


def _start_runner(session: Session, rid: ResourceId) -> None:
    from batchai_cli import private
    from batchai_cli.agent import layout
    from batchai_cli.engines import process_start, python_module, spawn_detached
    from batchai_cli.services.clusters import is_slurm

    body = session.state.get(rid)
    folder = layout.shared_dir(body)
    private.makedirs(folder)
    cluster_body = session.state.get(ids.parse(body["cluster"]["id"], expect="cluster")) or {}
    if is_slurm(cluster_body):
        _submit_to_slurm(session, rid, cluster_body, folder)
        return
    try:
        pid = spawn_detached(python_module("batchai_cli.engines.runner", str(rid)), os.path.join(folder, "runner.log"))
    except (OSError, BatchAIError) as exc:
        _end(session, rid, [batchai_error("JobStartFailed", f"Could not start the job's runner: {exc}")])
        raise BatchAIError(f"Could not start the job: {exc}") from None
    session.state.update_job(rid, runner={"pid": pid, "start": process_start(pid), "host": socket.gethostname()})


def _submit_to_slurm(session: Session, rid: ResourceId, cluster_body: dict, folder: str) -> None:
    from batchai_cli.engines import slurm

    properties = session.state.get_private(rid)["properties"]
    try:
        slurm_job = slurm.submit(str(rid), rid.name, properties, cluster_body.get("engine") or {}, folder)
    except BatchAIError as exc:
        _end(session, rid, [batchai_error("JobStartFailed", f"Could not submit the job to Slurm: {exc.message}")])
        raise BatchAIError(exc.message, hint=exc.hint) from None
    session.state.update_job(rid, runner={"slurm_job_id": slurm_job, "host": socket.gethostname()})


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


# -- reading, with the runners' health checked ------------------------------------------------


def _runner_dead(run: dict) -> bool:
    from batchai_cli.engines import process_alive

    runner = run.get("runner")
    if not runner or runner.get("host") != socket.gethostname():
        return False
    return not process_alive(runner["pid"], runner.get("start"))


def _slurm_job_ended(run: dict) -> list[dict] | None:
    """The errors to record for an active run whose Slurm job ended or vanished without the runner
    recording the end; None while it may still run, or when Slurm cannot be asked (said on stderr)."""
    from batchai_cli.engines import slurm

    slurm_job = run["runner"]["slurm_job_id"]
    try:
        errors = slurm.ended_errors(slurm_job)
    except BatchAIError as exc:
        log.warning("Cannot check Slurm job %s: %s", slurm_job, exc)
        return None
    if errors and run["phase"] == "terminating":
        # A terminate that stopped the job before its runner could record it.
        return [batchai_error("JobTerminated", "The job was terminated by the user."), *errors]
    return errors


def _dead_runner_errors(run: dict) -> list[dict] | None:
    """For an active run: the errors to record if its runner is gone, else None."""
    if "slurm_job_id" in (run.get("runner") or {}):
        return _slurm_job_ended(run)
    if not _runner_dead(run):
        return None
    return [
        batchai_error(
            "JobRunnerDied",
            f"The process that ran this job (pid {run['runner']['pid']}) ended without recording the job's "
            "end: it was killed or crashed. Its processes were stopped; see runner.log in the job's shared "
            "folder.",
        )
    ]


def _reconcile(session: Session, runs: list[dict]) -> list[dict]:
    """End the active runs whose runner died; returns the runs still active."""
    alive = []
    woken = set()
    for run in runs:
        errors = _dead_runner_errors(run) if run["phase"] in state.ACTIVE_PHASES else None
        if errors:
            rid = ids.parse(session.state.get_key_id(run["job_key"]) or "", expect="job")
            _end(session, rid, errors)
            if "slurm_job_id" not in run["runner"]:  # Slurm stops a job's processes on its nodes itself
                body = session.state.get(rid)
                if body:
                    from batchai_cli.agent.layout import kill_job_processes

                    kill_job_processes(body)
            woken.add(run["cluster_key"])
        else:
            alive.append(run)
    for cluster_key in woken:
        from batchai_cli.engines.runner import wake_runners

        wake_runners(session.state, cluster_key)
    return alive


def reconcile_cluster(session: Session, cluster_rid: ResourceId) -> list[dict]:
    """The active runs on a cluster, after ending those whose runner died."""
    return _reconcile(session, session.state.runs(cluster_key=cluster_rid.key))


def wake_queue(session: Session, cluster_rid: ResourceId) -> None:
    from batchai_cli.engines.runner import wake_runners

    wake_runners(session.state, cluster_rid.key)


def get_job(session: Session, rid: ResourceId) -> dict:
    body = session.state.get(rid)
    if body is None:
        raise not_found(rid, session)
    run = session.state.get_run(rid.key)
    if run and run["phase"] in state.ACTIVE_PHASES and not _reconcile(session, [run]):
        body = session.state.get(rid)
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
    return [get_job(session, ids.parse(body["id"])) for body in session.state.list("job", parent=experiment)]


def terminate_job(session: Session, rid: ResourceId, *, reason: str = "JobTerminated") -> None:
    """Stop every process of the job on every node. A queued job ends before it starts; an ended
    job is left as it is. `reason` is the error code the job ends with (models.STOP_MESSAGES:
    JobTerminated, or ClusterDeleted for `cluster delete`)."""
    get_job(session, rid)
    run = session.state.get_run(rid.key)
    if run is None or run["phase"] not in state.ACTIVE_PHASES:
        return
    stamp = state.now_iso()
    # Recorded before the phase changes, so the runner that sees "terminating" finds the reason.
    with contextlib.suppress(state.MissingResource):
        session.state.update_private(rid, lambda private: {**private, "stop": reason})

    def change(body: dict, _run: dict) -> dict:
        body["executionState"] = "terminating"
        body["executionStateTransitionTime"] = stamp
        return body

    session.state.update_job(rid, change, phase="terminating")
    runner = run.get("runner") or {}
    if runner.get("slurm_job_id"):
        _terminate_in_slurm(session, rid, runner["slurm_job_id"], reason)
    elif runner.get("pid") and runner.get("host") == socket.gethostname():
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.kill(runner["pid"], signal.SIGTERM)


def _terminate_in_slurm(session: Session, rid: ResourceId, slurm_job: str, reason: str) -> None:
    """A pending Slurm job leaves Slurm's queue and ends here; a running one's runner is signalled
    and ends the job itself (it also sees the job terminating, should the signal be lost)."""
    from batchai_cli.engines import slurm

    try:
        was = slurm.cancel(slurm_job)
    except BatchAIError as exc:
        log.warning("Could not reach Slurm to stop job %s: %s", slurm_job, exc)
        return
    if was == "PENDING":
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
    from batchai_cli.services.clusters import is_slurm, node_ids, slurm_nodes

    job = get_job(session, rid)
    run = session.state.get_run(rid.key)
    if not run or not run["nodes"]:
        return []
    cluster_rid = ids.parse(job["cluster"]["id"], expect="cluster")
    cluster_body = session.state.get(cluster_rid) or {}
    if is_slurm(cluster_body):
        # The runner records the nodes Slurm gave the job once it starts them.
        names = session.state.get_private(rid).get("options", {}).get("node_names")
        return slurm_nodes(cluster_body, names) if names else []
    names = node_ids(cluster_rid, session.state.get(cluster_rid) or {}, max(run["nodes"]) + 1)
    return [{"ipAddress": "127.0.0.1", "nodeId": names[index], "port": 22} for index in run["nodes"]]
