"""The local runner's queue: a job's runner waits here for its turn and its nodes, runs the job
(engines/runner.py), and folds the job's end into state.db at once, so the nodes are free for the
next job.

A job goes first by schedulingPriority, then age, and takes all of its nodes at once. Runners
sleep between checks and are woken (SIGUSR1) when nodes may have been freed. Nodes in setup
(nodeSetup.setupTask, engines/setup.py) or unusable are never given to a job.

engines/local.py (the Engine, called by services/) and engines/setup.py use the node helpers
here. This module is on the path from `job create` to the job's agents, so it stays light: no
Engine contract, no dataclasses.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading

from batchai_cli import bundle as bundles
from batchai_cli import ids, models, reports, state
from batchai_cli.nodes import node_capacity, node_ids
from batchai_cli.procs import process_alive, process_start

QUEUE_POLL = 1.0
POLL = 0.2


def runner_handle(pid: int) -> dict:
    return {"pid": pid, "start": process_start(pid), "host": socket.gethostname()}


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
