"""A job's runner, inside the job's allocation: starts one agent per node, enforces the wall-clock
limit and stop requests, and reports the job's start and end. It reads and writes only the job's
bundle (bundle.py) and never opens state.db, so it runs wherever the engine puts it:

    python -m batchai_cli.engines.runner <job-id>                      (local: engines/local_queue.py
                                                                         queues, then runs this)
    python -m batchai_cli.engines.runner --slurm <job-id> <bundle> <srun-pid>
                                    (slurm: the job's batch script, on its first node, once it has
                                     started the agents' srun step, srun-pid)

What it reports (reports/started.json, reports/ended.json) is folded into state.db by whoever reads
the job next (reports.fold); on a local cluster the local engine folds at once, to free the nodes.

Stops: a stop request in the bundle (stop.json: `job terminate`, `cluster delete`), SIGTERM (the
local engine passes terminate on; Slurm sends it for scancel and its time limits), and
maxWallClockTime.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from batchai_cli import bundle as bundles
from batchai_cli import log, private
from batchai_cli.agent import layout
from batchai_cli.models import batchai_error, stop_error
from batchai_cli.procs import blocked_signals, python_module, ready_for_signals

TERMINATE_GRACE = 20.0
POLL = 0.2


class Runner:
    def __init__(self, job_bundle: bundles.Bundle, *, slurm: bool = False):
        self.bundle = job_bundle
        self.request = job_bundle.request()
        self.job_id = self.request["id"]
        self.slurm = slurm
        self.wake = threading.Event()
        self.signalled = False

    def install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGUSR1, lambda *_: self.wake.set())
        # An agent (or the srun of the agents) that ends wakes the run loop at once: the job's end
        # is reported, and its nodes freed, without waiting out a poll.
        signal.signal(signal.SIGCHLD, lambda *_: self.wake.set())
        ready_for_signals()

    def _on_term(self, *_args) -> None:
        # SIGTERM comes from batchai's terminate (with a stop request in the bundle) or, under
        # Slurm, from Slurm itself (scancel, time limit); the bundle tells which.
        self.signalled = True
        self.wake.set()

    def stop_reason(self) -> str | None:
        """Why the job must stop now: the bundle's stop request, else "slurm" for a signal that came
        without one (Slurm's own), else None."""
        reason = self.bundle.stop_reason()
        if reason:
            return reason
        if self.signalled:
            return "slurm" if self.slurm else "JobTerminated"
        return None

    # -- the end of a job that never started ----------------------------------------------------

    def end_unstarted(self, reason: str) -> dict:
        """Report the end of a job stopped before it started; returns the report."""
        ended = _now()
        report = {
            "executionState": "failed",
            "startTime": None,
            "endTime": ended,
            "exitCode": None,
            "errors": [stop_error(reason, started=False)],
        }
        self.bundle.report(bundles.ENDED, report)
        return report

    # -- the run -----------------------------------------------------------------------------------

    def run(self, nodes: list[int], node_ids: list[str], *, node_names: list[str] | None = None, agents=None) -> dict:
        """Run the job on `nodes` (cluster node indexes; their ids, and their Slurm names under Slurm)
        to its end; returns the ended report, written to the bundle too. `agents` are the job's
        agents when they were started already (a Slurm job's step, waiting for the launch)."""
        started = _now()
        shared = self.bundle.path
        if agents is None:  # else the batch script cleared these before it started the agents
            for name in os.listdir(shared):
                if name.startswith(bundles.RUN_FILE_PREFIXES):
                    os.unlink(os.path.join(shared, name))
        launch = {"nodes": nodes, "node_ids": node_ids, "ports": _free_ports(2 * len(nodes) + 4)}
        if node_names is not None:
            from batchai_cli.engines import slurm_step

            addresses = slurm_step.node_addresses(node_names)
            launch.update(node_names=node_names, hosts=[addresses.get(name, name) for name in node_names])
        self.bundle.write(bundles.LAUNCH, launch)
        self.bundle.report(bundles.STARTED, {"startTime": started, "nodes": nodes})
        properties = self.request["properties"]
        if agents is None and node_names is not None:
            from batchai_cli.engines import slurm_step

            agents = slurm_step.AgentStep(self.job_id, node_names, self.bundle)
        elif agents is None:
            agents = LocalAgents(self.job_id, nodes, node_ids, self.bundle)
        limit = wall_clock_seconds(properties)
        essential = self._essential_tasks(properties, len(nodes))
        deadline = time.monotonic() + limit if limit else None
        errors: list[dict] = []
        reason: str | None = None
        stopping_at: float | None = None

        def lost(task: int) -> bool:
            return agents.task_done(task) and not os.path.exists(self.bundle.result_path(task))

        while agents.running():
            if stopping_at is None and (
                all(agents.task_done(t) for t in essential) or any(map(lost, range(len(nodes))))
            ):
                # The job's work is done (parameter servers and idle nodes are left), or an agent
                # died: the other nodes wait for it to be ready (agent/node.py) or need it.
                agents.signal(signal.SIGTERM)
                stopping_at = time.monotonic()
            reason = reason or self.stop_reason()
            if deadline and time.monotonic() > deadline and not reason:
                reason = "wallclock"
                errors.append(
                    batchai_error(
                        "JobMaxWallClockTimeExceeded",
                        f"The job ran longer than its maxWallClockTime "
                        f"({properties['constraints']['maxWallClockTime']}) and was stopped.",
                    )
                )
            if reason and stopping_at is None:
                agents.signal(signal.SIGTERM)
                stopping_at = time.monotonic()
            if stopping_at and time.monotonic() - stopping_at > TERMINATE_GRACE:
                agents.signal(signal.SIGKILL)
            self.wake.wait(POLL)
            self.wake.clear()
        reason = reason or self.stop_reason()
        exit_code = None
        for task in range(len(nodes)):
            result = self.bundle.read(f"result-{task}.json")
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
                    layout.kill_job_processes(self.request["body"], task)
                agents.recover(task)  # what the dead agent had not shipped yet
                continue
            errors.extend(result.get("errors") or [])
            # The job's exit code: the first failure among the essential nodes, else the master's.
            if task in essential and result.get("exitCode") is not None and exit_code in (None, 0):
                exit_code = result["exitCode"]
        if reason == "slurm":
            from batchai_cli.engines import slurm_step

            slurm_job = os.environ.get("SLURM_JOB_ID", "?")
            errors.append(batchai_error("SlurmJobEnded", slurm_step.state_message(slurm_job), slurmJobId=slurm_job))
        elif reason and reason != "wallclock":
            errors.append(stop_error(reason, started=True))
        return self._report_end(exit_code, errors, started)

    def _essential_tasks(self, properties: dict, node_count: int) -> list[int]:
        from batchai_cli.agent import toolkits  # here: the agents are started without waiting for it

        cluster = toolkits.Cluster(hosts=["127.0.0.1"] * node_count, ports=[])
        tasks = [
            task
            for task in range(node_count)
            if any(launch.role != "ps" for launch in toolkits.plan(properties, task, cluster))
        ]
        return sorted(set(tasks) | {0})

    def _report_end(self, exit_code: int | None, errors: list[dict], started: str) -> dict:
        succeeded = exit_code == 0 and not errors
        if exit_code not in (None, 0) and not any(e["code"] == "JobTerminated" for e in errors):  # one says it
            errors.insert(0, batchai_error("JobFailed", "Job failed with non-zero exit code"))
        report = {
            "executionState": "succeeded" if succeeded else "failed",
            "startTime": started,
            "endTime": _now(),
            "exitCode": exit_code,
            "errors": errors or None,
        }
        self.bundle.report(bundles.ENDED, report)
        return report


class LocalAgents:
    """A job's agents on this machine: one process per node, each in its own session."""

    def __init__(self, job_id: str, nodes: list[int], node_ids: list[str], job_bundle: bundles.Bundle):
        self.job_id, self.node_ids, self.bundle_path = job_id, node_ids, job_bundle.path
        self.processes = []
        for task, node in enumerate(nodes):
            log_path = job_bundle.file(f"agent-{task}.log")
            with open(log_path, "ab") as handle, blocked_signals():
                self.processes.append(
                    subprocess.Popen(
                        python_module("batchai_cli.agent", "run", job_id, str(task), str(node), job_bundle.path),
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

    def recover(self, task: int) -> None:
        """Ship what task's dead agent left in its node's spool (the node is this machine)."""
        from batchai_cli.agent.recover import recover

        try:
            recover(self.job_id, task, self.node_ids[task], self.bundle_path)
        except Exception as exc:
            log.warning("could not recover the logs of task %d: %s", task, exc)

    def how(self, task: int) -> str:
        code = self.processes[task].returncode
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wall_clock_seconds(properties: dict) -> float | None:
    from batchai_cli.durations import parse_duration

    text = (properties.get("constraints") or {}).get("maxWallClockTime")
    parsed = parse_duration(text) if text else None
    return parsed.total_seconds() if parsed else None


def _free_ports(count: int) -> list[int]:
    import socket

    sockets, ports = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports


def run_slurm(bundle_path: str, srun_pid: int | None = None) -> int:
    """The batch script of a Slurm job: the job's nodes are the allocation's. `srun_pid` is the
    agents' step, which the batch script started before it became this runner."""
    import socket

    from batchai_cli.engines import slurm_step

    job_bundle = bundles.adopt(bundle_path)
    runner = Runner(job_bundle, slurm=True)
    runner.bundle.report(
        bundles.RUNNER, {"host": socket.gethostname(), "pid": os.getpid(), "slurmJobId": os.environ.get("SLURM_JOB_ID")}
    )
    runner.install_signals()
    names = slurm_step.hostnames(os.environ.get("SLURM_JOB_NODELIST", ""))
    node_count = int(runner.request["properties"]["nodeCount"])
    node_names = names[:node_count]
    agents = None
    if srun_pid is not None:
        agents = slurm_step.AgentStep(runner.job_id, node_names, job_bundle, srun_pid=srun_pid)
    reason = runner.stop_reason()
    if reason:  # terminated (or found lost) before Slurm started it
        if agents is not None:
            agents.signal(signal.SIGTERM)  # they are waiting for a launch that will not come
        runner.end_unstarted(reason)
        return 0
    runner.run(list(range(node_count)), node_names, node_names=node_names, agents=agents)
    return 0


def main(argv: list[str]) -> int:
    private.enter()
    try:
        if argv[:1] == ["--slurm"]:
            return run_slurm(argv[2], int(argv[3]) if len(argv) > 3 else None)
        from batchai_cli.engines import local_queue

        return local_queue.run_queued(argv[0])
    except Exception as exc:  # the log file is the only witness; the next look at the job reconciles
        log.warning("runner failed: %s", exc)
        import traceback

        traceback.print_exc()
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
