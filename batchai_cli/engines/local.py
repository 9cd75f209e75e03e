"""The local engine: a cluster's nodes are slots on this machine.

Each job gets a detached runner process (`python -m batchai_cli.engines.runner <job-id>`) that
waits in batchai's own queue (schedulingPriority, then age; all of a job's nodes at once) for free
usable nodes, then runs the job (engines/runner.py) and folds the job's reports into state.db at
once, so the nodes are free for the next job. Runners sleep between checks and are woken (SIGUSR1)
when nodes may have been freed. This engine lives on the control plane's machine, so it may use
state.db; its nodes, like every engine's, read only the job's bundle.

Setup tasks (nodeSetup.setupTask) run on each new node after allocation (engines/setup.py): a node
is `preparing` while its task runs, then `idle` or `unusable`; jobs are placed on idle nodes only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading

from batchai_cli import bundle as bundles
from batchai_cli import ids, models, reports, settings, state
from batchai_cli.engines.base import Cluster, Engine, NodeView, Submitted
from batchai_cli.errors import BatchAIError, EngineError
from batchai_cli.nodes import node_capacity, node_ids
from batchai_cli.procs import process_alive, process_start, python_module, spawn_detached

QUEUE_POLL = 1.0
POLL = 0.2


class LocalEngine(Engine):
    name = "local"

    # -- clusters ---------------------------------------------------------------------------------

    def check_cluster(self, properties: dict) -> None:
        return None

    def created(self, cluster: Cluster, db) -> None:
        """Run the setup task on the nodes that have not had it (all of them, at creation)."""
        if not (cluster.properties.get("nodeSetup") or {}).get("setupTask"):
            return
        capacity, _ = node_capacity(cluster.body)
        done = cluster.private.get("nodes") or {}
        new = [index for index in range(capacity) if str(index) not in done]
        if not new:
            return
        log_path = os.path.join(settings.ensure_home(), "setup.log")
        pid = spawn_detached(python_module("batchai_cli.engines.setup", str(cluster.rid), *map(str, new)), log_path)
        process = {"pid": pid, "start": process_start(pid)}

        def change(current: dict) -> dict:
            nodes = current.setdefault("nodes", {})
            for index in new:
                nodes.setdefault(str(index), {"state": "preparing", "error": None, "process": process})
            return current

        db.update_private(cluster.rid, change)

    def rescaled(self, cluster: Cluster, db) -> None:
        self.created(cluster, db)  # new nodes get their setup task
        release_removed_nodes(db, cluster.rid)

    def check_fits(self, cluster: Cluster, needed: int) -> None:
        capacity, _ = node_capacity(cluster.body)
        if needed > capacity:
            rid = cluster.rid
            scale = "auto-scales to at most" if (cluster.body.get("scaleSettings") or {}).get("autoScale") else "has"
            raise BatchAIError(
                f'The job needs {needed} node{"s" if needed != 1 else ""}, but cluster "{rid.name}" {scale} '
                f"{capacity}.",
                hint=f"Resize it (batchai cluster resize -g {rid.resource_group} -w {rid.get('workspace')} "
                f"-n {rid.name} -t {needed}) or lower nodeCount.",
            )

    def node_view(self, cluster: Cluster, runs: list[dict]) -> NodeView:
        body = cluster.body
        capacity, floor = node_capacity(body)
        held = [node for run in runs if run["phase"] in ("running", "terminating") for node in run["nodes"]]
        if (body.get("scaleSettings") or {}).get("autoScale"):
            demand = sum(run["node_count"] for run in runs)
            current = max(floor, min(capacity, demand))
            current = max(current, max(held, default=-1) + 1)
        else:
            current = capacity
        running = sum(1 for node in held if node < current)
        leaving = sum(1 for node in held if node >= current)
        states = node_states(cluster.private)
        # Over the nodes that have a state, not over the count: a cluster resized to millions of
        # nodes that no job fills costs nothing to show.
        preparing = sum(1 for index, node in states.items() if index < current and node.get("state") == "preparing")
        unusable = sum(1 for index, node in states.items() if index < current and node.get("state") == "unusable")
        errors = [node["error"] for index, node in sorted(states.items()) if node.get("error") and index < current]
        return NodeView(
            current=current + leaving,
            counts={
                "idle": max(0, current - running - preparing - unusable),
                "leaving": leaving,
                "preparing": preparing,
                "running": running,
                "unusable": unusable,
            },
            errors=errors or None,
            resizing=bool(leaving),
        )

    def nodes(self, cluster: Cluster, count: int | None = None) -> list[dict]:
        if count is None:
            count = node_capacity(cluster.body)[0]
        return [{"ipAddress": "127.0.0.1", "nodeId": node, "port": 22} for node in cluster_node_ids(cluster, count)]

    def job_nodes(self, cluster: Cluster, run: dict, launch: dict | None) -> list[dict]:
        indexes = run["nodes"]
        names = node_ids(cluster.rid.key, cluster.body.get("creationTime") or "", indexes)
        return [{"ipAddress": "127.0.0.1", "nodeId": name, "port": 22} for name in names]

    def deleting(self, cluster: Cluster, db) -> None:
        _stop_setup(cluster.private)
        from batchai_cli import log
        from batchai_cli.agent.volumes import release_cluster

        # Cluster-level volumes stay mounted for the nodes' life, which ends here.
        for problem in release_cluster(cluster_node_ids(cluster, 1), lambda text: log.info("%s", text)):
            log.warning("%s", problem)

    # -- jobs ---------------------------------------------------------------------------------------

    def submit(self, job: Submitted) -> dict:
        try:
            pid = spawn_detached(
                python_module("batchai_cli.engines.runner", str(job.rid)), os.path.join(job.bundle_path, "runner.log")
            )
        except OSError as exc:
            raise EngineError(f"Could not start the job's runner: {exc}") from None
        return runner_handle(pid)

    def terminate(self, handle: dict) -> bool:
        if handle.get("pid") and handle.get("host") == socket.gethostname():
            with contextlib.suppress(ProcessLookupError):
                os.kill(handle["pid"], signal.SIGTERM)
        return False

    def lost(self, runs: list[dict]) -> dict[str, list[dict]]:
        lost = {}
        for run in runs:
            handle = run.get("runner") or {}
            if handle.get("host") != socket.gethostname():
                continue
            if handle.get("pid") and not process_alive(handle["pid"], handle.get("start")):
                lost[run["job_key"]] = [
                    models.batchai_error(
                        "JobRunnerDied",
                        f"The process that ran this job (pid {handle['pid']}) ended without recording the job's "
                        "end: it was killed or crashed. Its processes were stopped; see runner.log in the job's "
                        "shared folder.",
                    )
                ]
        return lost

    def after_lost(self, run: dict, body: dict) -> None:
        from batchai_cli.agent.layout import kill_job_processes

        kill_job_processes(body)

    nodes_are_here = True

    def node_command(self, cluster: Cluster, handle: dict | None, node: str, argv: list[str]) -> list[str]:
        return list(argv)

    def wake(self, db, cluster_key: str) -> None:
        wake_runners(db, cluster_key)


def runner_handle(pid: int) -> dict:
    return {"pid": pid, "start": process_start(pid), "host": socket.gethostname()}


def cluster_node_ids(cluster: Cluster, count: int) -> list[str]:
    return node_ids(cluster.rid.key, cluster.body.get("creationTime") or "", range(count))


def release_removed_nodes(db, cluster_rid) -> None:
    """Unmount the cluster-level volumes of nodes a resize down removed, once no job holds them
    (a node still running a job keeps them until that job ends: run_queued calls this then)."""
    import glob

    from batchai_cli import log
    from batchai_cli.agent import layout
    from batchai_cli.agent.volumes import release_node

    body = db.get(cluster_rid)
    if body is None:
        return
    capacity, _ = node_capacity(body)
    held = {
        node for run in db.runs(cluster_key=cluster_rid.key, phases=("running", "terminating")) for node in run["nodes"]
    }
    first = node_ids(cluster_rid.key, body.get("creationTime") or "", [0])[0]
    prefix, _, rest = first.rpartition("_")
    stamp = rest.split("-", 1)[-1]
    for root in sorted(glob.glob(layout.node_root(f"{glob.escape(prefix)}_*-{glob.escape(stamp)}"))):
        number = os.path.basename(root).rpartition("_")[2].split("-", 1)[0]
        index = int(number) - 1 if number.isdigit() else -1
        if index >= capacity and index not in held:
            for problem in release_node(root, lambda text: log.info("%s", text)):
                log.warning("%s", problem)


def node_states(private: dict) -> dict[int, dict]:
    """Each set-up node's state (preparing | idle | unusable); a preparing node whose setup process
    died is unusable."""
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


def usable_nodes(body: dict, private: dict, needed: int) -> list[int]:
    """Up to `needed` nodes jobs may be placed on besides those busy: allocated, and not preparing
    or unusable. Costs grow with the nodes that have a state and the nodes asked for, never with
    the cluster's size (a cluster may be resized to millions of nodes that no job fills)."""
    capacity, _ = node_capacity(body)
    states = node_states(private)
    blocked = {index for index, node in states.items() if node.get("state", "idle") != "idle"}
    usable = []
    index = 0
    while index < capacity and len(usable) < needed:
        if index not in blocked:
            usable.append(index)
        index += 1
    return usable


def _stop_setup(private: dict) -> None:
    """Stop setup tasks still running on the cluster's nodes (their process group, tasks included)."""
    stopped = set()
    for node in (private.get("nodes") or {}).values():
        process = node.get("process") or {}
        pid = process.get("pid")
        if node.get("state") == "preparing" and pid and pid not in stopped and process_alive(pid, process.get("start")):
            stopped.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)


def wake_runners(db, cluster_key: str) -> None:
    """Nudge the queued runners of a cluster on this machine: nodes may be free now."""
    host = socket.gethostname()
    for run in db.runs(cluster_key=cluster_key, phases=("queued",)):
        runner = run.get("runner") or {}
        if runner.get("host") == host and runner.get("pid") and process_alive(runner["pid"], runner.get("start")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(runner["pid"], signal.SIGUSR1)


# -- the runner's queue ------------------------------------------------------------------------------


class _NotActive(Exception):
    """The job ended (or was found lost) before its runner could record itself."""


def run_queued(job_id: str) -> int:
    """The local runner: wait for the job's turn and nodes, run it, fold its end into state.db."""
    from batchai_cli.engines.runner import Runner

    rid = ids.parse(job_id, expect="job")
    db = state.open_state()
    body = db.get(rid)
    if body is None:
        return 0
    runner = Runner(bundles.Bundle.of(body))
    runner.install_signals()

    def record(body: dict, run: dict) -> dict:
        if run["phase"] not in state.ACTIVE_PHASES:
            raise _NotActive
        return body

    # The runner records itself: a `job create` killed right after starting it leaves no gap.
    try:
        db.update_job(rid, record, runner=runner_handle(os.getpid()))
    except (_NotActive, state.MissingResource):
        return 0
    nodes = _wait_for_nodes(db, rid, runner)
    if isinstance(nodes, str):  # why it will never start
        run = db.get_run(rid.key)
        if run is not None and run["phase"] in state.ACTIVE_PHASES:
            runner.end_unstarted(nodes)
            _fold_and_wake(db, rid, run["cluster_key"])
        return 0
    cluster_body = db.get(ids.parse(body["cluster"]["id"], expect="cluster")) or {}
    names = node_ids(ids.parse(body["cluster"]["id"]).key, cluster_body.get("creationTime") or "", nodes)
    started = threading.Event()
    watcher = threading.Thread(target=_fold_when_started, args=(rid, runner.bundle, started), daemon=True)
    watcher.start()
    try:
        runner.run(nodes, names)
    finally:
        started.set()
    run = db.get_run(rid.key)
    _fold_and_wake(db, rid, run["cluster_key"] if run else None)
    return 0


def _fold_when_started(rid, job_bundle: bundles.Bundle, done: threading.Event) -> None:
    """Fold the started report as soon as the runner writes it (job show reads it anyway; this
    makes the body say running without waiting for a reader)."""
    while not done.is_set():
        if job_bundle.read(bundles.STARTED) is not None:
            db = state.open_state()
            try:
                reports.fold(db, rid)
            finally:
                db.close()
            return
        done.wait(0.05)


def _fold_and_wake(db, rid, cluster_key: str | None) -> None:
    reports.fold(db, rid)
    if cluster_key:
        wake_runners(db, cluster_key)
        cluster_id = db.get_key_id(cluster_key)
        if cluster_id:
            release_removed_nodes(db, ids.parse(cluster_id, expect="cluster"))


def _wait_for_nodes(db, rid, runner) -> list[int] | str:
    """The job's nodes once it is first in its cluster's queue and enough usable nodes are free;
    else why it will never start (the stop reason: JobTerminated, ClusterDeleted...)."""
    delay = POLL
    while True:
        reason = runner.stop_reason()
        if reason:
            return reason
        run = db.get_run(rid.key)
        if run is None or run["phase"] != "queued":
            return "JobTerminated"  # deleted, or terminating with its stop request still on the way
        body = db.get(rid)
        cluster_rid = ids.parse(body["cluster"]["id"], expect="cluster")
        cluster = db.get(cluster_rid)
        if cluster is None:
            return "ClusterDeleted"
        if _may_fit(db, run):
            busy = _busy(db, run["cluster_key"])
            usable = usable_nodes(cluster, db.get_private(cluster_rid), run["node_count"] + len(busy))
            usable = [node for node in usable if node not in busy]
            nodes = db.claim_nodes(rid.key, usable)
            if nodes is not None:
                return nodes
        runner.wake.wait(delay)
        runner.wake.clear()
        delay = min(delay * 1.5, QUEUE_POLL)


def _busy(db, cluster_key: str) -> set[int]:
    return {node for r in db.runs(cluster_key=cluster_key, phases=("running", "terminating")) for node in r["nodes"]}


def _may_fit(db, run: dict) -> bool:
    """A read-only look before taking the write lock: head of the queue, and enough nodes free."""
    queued = db.runs(cluster_key=run["cluster_key"], phases=("queued",))
    return bool(queued) and queued[0]["job_key"] == run["job_key"]
