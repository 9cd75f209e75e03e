"""A job's runner: waits for the job's turn and nodes, starts one agent per node, enforces the
wall-clock limit and termination, and records the job's end. One detached process per job.

    python -m batchai_cli.engines.runner <job-id>            (local: started detached by job create)
    python -m batchai_cli.engines.runner --slurm <job-id>    (slurm: the batch script of the job)

Queue: a job starts when it is first among the cluster's queued jobs (schedulingPriority, then
age) and the cluster has as many free nodes as it needs (all at once). Runners sleep between
checks and are woken (SIGUSR1) when nodes may have been freed.

On a Slurm cluster Slurm has done the queueing by the time the runner starts, on the nodes it
chose: the runner takes nodes 0..N-1 in batchai's records (for display), starts the agents as one
srun step (engines/slurm.py) instead of one process each, and otherwise works as here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from batchai_cli import ids, log, private, state
from batchai_cli.agent import layout, toolkits
from batchai_cli.engines import blocked_signals, python_module, ready_for_signals
from batchai_cli.models import batchai_error, stop_error

TERMINATE_GRACE = 20.0
POLL = 0.2
QUEUE_POLL = 1.0


class Runner:
    def __init__(self, job_id: str, *, slurm: bool = False):
        self.rid = ids.parse(job_id, expect="job")
        self.slurm = slurm
        self.db = state.open_state()
        self.wake = threading.Event()
        self.stop_reason: str | None = None
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGUSR1, lambda *_: self.wake.set())
        ready_for_signals()

    def _on_term(self, *_args) -> None:
        # Under Slurm, SIGTERM comes from batchai's terminate or from Slurm itself (scancel, time
        # limit); the job's state tells which (run()).
        self.stop_reason = self.stop_reason or ("signalled" if self.slurm else "terminated")
        self.wake.set()

    # -- queue --------------------------------------------------------------------------------

    def wait_for_nodes(self) -> list[int] | None:
        from batchai_cli.services.clusters import usable_nodes

        delay = POLL
        while True:
            run = self.db.get_run(self.rid.key)
            if run is None:
                return None  # deleted
            if run["phase"] == "terminating" or self.stop_reason:
                self.stop_reason = "terminated"
                return None
            cluster_rid = ids.parse(self.db.get(self.rid)["cluster"]["id"])
            cluster = self.db.get(cluster_rid)
            if cluster is None:
                self.stop_reason = "cluster-deleted"
                return None
            usable = usable_nodes(cluster, self.db.get_private(cluster_rid))
            if self._may_fit(run, usable):
                nodes = self.db.claim_nodes(self.rid.key, usable)
                if nodes is not None:
                    return nodes
            self.wake.wait(delay)
            self.wake.clear()
            delay = min(delay * 1.5, QUEUE_POLL)

    def _may_fit(self, run: dict, usable: list[int]) -> bool:
        """A read-only look before taking the write lock: head of the queue, and enough nodes free."""
        runs = self.db.runs(cluster_key=run["cluster_key"])
        queued = [r for r in runs if r["phase"] == "queued"]
        if not queued or queued[0]["job_key"] != run["job_key"]:
            return False
        busy = {node for r in runs if r["phase"] in ("running", "terminating") for node in r["nodes"]}
        return len([node for node in usable if node not in busy]) >= run["node_count"]

    def take_slurm_nodes(self) -> list[int] | None:
        """Slurm gave the job its nodes: record it running on nodes 0..N-1, unless it was
        terminated, deleted or ended meanwhile."""
        run = self.db.get_run(self.rid.key)
        if run is None:
            return None
        if run["phase"] != "queued":
            self.stop_reason = "terminated"
            return None
        if self.db.get(ids.parse(self.db.get(self.rid)["cluster"]["id"])) is None:
            self.stop_reason = "cluster-deleted"
            return None
        nodes = list(range(run["node_count"]))

        def still_queued(body: dict, current: dict) -> dict:
            if current["phase"] != "queued":
                raise _NotQueued
            return body

        try:
            self.db.update_job(self.rid, still_queued, phase="running", nodes=nodes)
        except _NotQueued:
            self.stop_reason = "terminated"
            return None
        return nodes

    # -- run ----------------------------------------------------------------------------------

    def run(self) -> int:
        nodes = self.take_slurm_nodes() if self.slurm else self.wait_for_nodes()
        if nodes is None:
            run = self.db.get_run(self.rid.key)
            if run is not None and run["phase"] in state.ACTIVE_PHASES:
                self.finish(None, [stop_error(self._stop_code(), started=False)], started=None)
            return 0
        started = state.now_iso()
        body, _run = self.db.update_job(self.rid, lambda b, r: _running(b, started))
        private = self.db.get_private(self.rid)
        properties = private["properties"]
        shared = layout.shared_dir(body)
        os.makedirs(shared, exist_ok=True)
        for name in os.listdir(shared):
            if name.startswith(("result-", "pgids-", "stop-agents")):
                os.unlink(os.path.join(shared, name))
        launch = {"nodes": nodes, "ports": _free_ports(2 * len(nodes) + 4)}
        if self.slurm:
            from batchai_cli.engines import slurm

            names = slurm.hostnames(os.environ.get("SLURM_JOB_NODELIST", ""))
            addresses = slurm.node_addresses(names)
            launch.update(node_names=names, hosts=[addresses.get(name, name) for name in names])
        options = {**private.get("options", {}), **launch}
        self.db.update_private(self.rid, lambda p: {**p, "options": options})
        if self.slurm:
            agents = slurm.AgentStep(
                str(self.rid), launch["node_names"], shared, lambda task: layout.result_path(body, task)
            )
        else:
            agents = LocalAgents(str(self.rid), nodes, shared)
        limit = _wall_clock_seconds(properties)
        essential = self._essential_tasks(properties, len(nodes))
        deadline = time.monotonic() + limit if limit else None
        errors: list[dict] = []
        stopping_at: float | None = None
        while True:
            if not agents.running():
                break
            if all(agents.task_done(t) for t in essential) and stopping_at is None:
                agents.signal(signal.SIGTERM)  # parameter servers and idle nodes
                stopping_at = time.monotonic()
            run = self.db.get_run(self.rid.key)
            if run is None:
                self.stop_reason = "deleted"
            elif run["phase"] == "terminating":
                self.stop_reason = self.stop_reason or "terminated"
            if self.stop_reason == "signalled":
                self.stop_reason = "terminated" if run and run["phase"] == "terminating" else "slurm"
            if deadline and time.monotonic() > deadline and not self.stop_reason:
                self.stop_reason = "wallclock"
                errors.append(
                    batchai_error(
                        "JobMaxWallClockTimeExceeded",
                        f"The job ran longer than its maxWallClockTime "
                        f"({properties['constraints']['maxWallClockTime']}) and was stopped.",
                    )
                )
            if self.stop_reason and stopping_at is None:
                agents.signal(signal.SIGTERM)
                stopping_at = time.monotonic()
            if stopping_at and time.monotonic() - stopping_at > TERMINATE_GRACE:
                agents.signal(signal.SIGKILL)
            self.wake.wait(POLL)
            self.wake.clear()
        exit_code = None
        for task in range(len(nodes)):
            result = _read_result(body, task)
            if result is None:
                errors.append(
                    batchai_error(
                        "NodeAgentDied",
                        f"The agent on {agents.where(task)} {agents.how(task)} before it reported a result; "
                        "the job was stopped.",
                        node=task,
                    )
                )
                if not self.slurm:  # Slurm stops what is left of the step on each node itself
                    layout.kill_job_processes(body, task)
                continue
            errors.extend(result.get("errors") or [])
            # The job's exit code: the first failure among the essential nodes, else the master's.
            if task in essential and result.get("exitCode") is not None and exit_code in (None, 0):
                exit_code = result["exitCode"]
        if self.stop_reason == "deleted":
            return 0
        if self.stop_reason in ("terminated", "cluster-deleted"):
            errors.append(stop_error(self._stop_code(), started=True))
        elif self.stop_reason == "slurm":
            from batchai_cli.engines import slurm

            slurm_job = os.environ.get("SLURM_JOB_ID", "?")
            errors.append(batchai_error("SlurmJobEnded", slurm.state_message(slurm_job), slurmJobId=slurm_job))
        self.finish(exit_code, errors, started=started)
        return 0

    def _stop_code(self) -> str:
        """Why the job was stopped: the code its terminate recorded (ClusterDeleted for `cluster
        delete`), ClusterDeleted when the runner found the cluster gone, else JobTerminated."""
        if self.stop_reason == "cluster-deleted":
            return "ClusterDeleted"
        return self.db.get_private(self.rid).get("stop") or "JobTerminated"

    def _essential_tasks(self, properties: dict, node_count: int) -> list[int]:
        cluster = toolkits.Cluster(hosts=["127.0.0.1"] * node_count, ports=[])
        tasks = [
            task
            for task in range(node_count)
            if any(launch.role != "ps" for launch in toolkits.plan(properties, task, cluster))
        ]
        return sorted(set(tasks) | {0})

    def finish(self, exit_code: int | None, errors: list[dict], *, started: str | None) -> None:
        ended = state.now_iso()
        succeeded = exit_code == 0 and not errors
        if exit_code not in (None, 0) and not any(e["code"] == "JobTerminated" for e in errors):  # one says it
            errors.insert(0, batchai_error("JobFailed", "Job failed with non-zero exit code"))

        def change(body: dict, _run: dict) -> dict:
            body["executionState"] = "succeeded" if succeeded else "failed"
            body["executionStateTransitionTime"] = ended
            body["executionInfo"] = {
                "startTime": started,
                "endTime": ended,
                "exitCode": exit_code,
                "errors": errors or None,
            }
            return body

        try:
            self.db.update_job(self.rid, change, phase="ended", nodes=[])
        except state.MissingResource:
            return
        wake_runners(self.db, self.db.get_run(self.rid.key)["cluster_key"])


class _NotQueued(Exception):
    """The job left the queue (terminated, ended) before its runner could start it."""


class LocalAgents:
    """A job's agents on this machine: one process per node, each in its own session."""

    def __init__(self, job_id: str, nodes: list[int], shared: str):
        self.processes = []
        for task, node in enumerate(nodes):
            log_path = os.path.join(shared, f"agent-{task}.log")
            with open(log_path, "ab") as handle, blocked_signals():
                self.processes.append(
                    subprocess.Popen(
                        python_module("batchai_cli.agent", "run", job_id, str(task), str(node)),
                        stdin=subprocess.DEVNULL,
                        stdout=handle,
                        stderr=handle,
                        start_new_session=True,
                    )
                )

    def running(self) -> bool:
        return any(process.poll() is None for process in self.processes)

    def task_done(self, task: int) -> bool:
        return self.processes[task].poll() is not None

    def signal(self, sig: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, sig)

    def where(self, task: int) -> str:
        return f"node {task}"

    def how(self, task: int) -> str:
        code = self.processes[task].returncode
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def _running(body: dict, started: str) -> dict:
    body["executionState"] = "running"
    body["executionStateTransitionTime"] = started
    body["executionInfo"] = {"startTime": started, "endTime": None, "exitCode": None, "errors": None}
    return body


def wake_runners(db, cluster_key: str) -> None:
    """Nudge the queued runners of a cluster on this machine: nodes may be free now."""
    host = socket.gethostname()
    for run in db.runs(cluster_key=cluster_key, phases=("queued",)):
        runner = run.get("runner") or {}
        if runner.get("host") == host and runner.get("pid"):
            from batchai_cli.engines import process_alive

            if process_alive(runner["pid"], runner.get("start")):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(runner["pid"], signal.SIGUSR1)


def _read_result(body: dict, task: int) -> dict | None:
    try:
        with open(layout.result_path(body, task)) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _wall_clock_seconds(properties: dict) -> float | None:
    from batchai_cli.config.checks import parse_duration

    text = (properties.get("constraints") or {}).get("maxWallClockTime")
    parsed = parse_duration(text) if text else None
    return parsed.total_seconds() if parsed else None


def _free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports


def main(argv: list[str]) -> int:
    slurm = argv[:1] == ["--slurm"]
    private.enter()
    try:
        return Runner(argv[-1], slurm=slurm).run()
    except Exception as exc:  # the log file is the only witness; the job show reconciles the state
        log.warning("runner failed: %s", exc)
        import traceback

        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
