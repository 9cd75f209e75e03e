"""A job's bundle: the folder in the shared root that holds everything the job's nodes need and
everything they report. state.db never leaves the machine where `batchai` runs; nodes (a Slurm
job's runner and agents, which may be other machines) read and write only this folder and storage.

    <shared root>/jobs/<job uuid>/        0700 (files 0600: the request holds secrets)
        job.json        the request: job id, body, properties with secrets, options, the
                        cluster's id, creation time and properties                  (CLI: job create)
        stop.json       a stop request and its reason {"reason": "JobTerminated"}   (CLI: terminate)
        launch.json     the nodes the job got: indexes, ids, Slurm names, hosts, ports (runner)
        reports/started.json   {"startTime", "nodes"}                                (runner)
        reports/ended.json     {"executionState", "exitCode", "errors", "startTime", "endTime"}
        reports/runner.json    where the runner runs {"host", "pid", "start"}        (runner)
        prepared-<task>        the node is ready: volumes placed, jobPreparation done   (agent)
        result-<task>.json     each node's end                                       (agent)
        lost-<task>            a Slurm agent's exit status, when it died without its result (srun's shell)
        pgids-<task>, agent-<task>.log, runner.log, job.sbatch
        stop-agents            the agents are to stop (a Slurm step signalled before it was ready)

Every file is written whole under a temporary name, then renamed: a reader sees the old file or
the new one, never half. Reports only ever move forward (started, then ended), so folding them into
state.db (reports.fold) twice changes nothing the second time.

A leaf module: the services, the engines and the agent all use it.
"""

from __future__ import annotations

import contextlib
import json
import os

from batchai_cli import private, settings

REQUEST = "job.json"
STOP = "stop.json"
LAUNCH = "launch.json"
STARTED = "reports/started.json"
ENDED = "reports/ended.json"
RUNNER = "reports/runner.json"
STOP_AGENTS = "stop-agents"
# What one run of the job's agents leaves (each node's readiness, result, death and process groups;
# the stop mark), cleared before the agents start.
RUN_FILE_PREFIXES = ("result-", "prepared-", "lost-", "pgids-", STOP_AGENTS)


def job_uuid(body: dict) -> str:
    """The last part of jobOutputDirectoryPathSegment: the job's own id, unique across re-creations."""
    return (body.get("jobOutputDirectoryPathSegment") or "").rsplit("/", 1)[-1]


def folder_of(body: dict) -> str:
    return os.path.join(settings.shared_root(), "jobs", job_uuid(body))


def adopt(path: str) -> Bundle:
    """The bundle a node process was started with. Its shared root becomes this process's
    (BATCHAI_SHARED_DIR), so that every path derived here agrees with the CLI's, whatever this
    node's own settings say (it may not even see $BATCHAI_HOME)."""
    path = os.path.abspath(path)
    os.environ["BATCHAI_SHARED_DIR"] = os.path.dirname(os.path.dirname(path))
    return Bundle(path)


class Bundle:
    def __init__(self, path: str):
        self.path = path

    @classmethod
    def of(cls, body: dict) -> Bundle:
        return cls(folder_of(body))

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def create(self) -> None:
        private.makedirs(os.path.join(self.path, "reports"))

    def write(self, name: str, data: dict) -> None:
        """Write `name` whole, atomically (a temporary file renamed over it), owner-only."""
        private.write_whole(self.file(name), json.dumps(data))

    def read(self, name: str) -> dict | None:
        """`name`'s content, or None when it is not there (or not readable: a report being replaced
        is never half-written, so an unreadable one is not one of ours)."""
        try:
            with open(self.file(name), encoding="utf-8") as handle:
                value = json.load(handle)
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    # -- what the CLI writes ------------------------------------------------------------------------

    def request(self) -> dict:
        """The job's request (job.json); a clear SystemExit when the bundle is missing, e.g. a
        shared folder that this node does not see."""
        request = self.read(REQUEST)
        if request is None:
            raise SystemExit(
                f"The job's bundle {self.file(REQUEST)} cannot be read here: the shared folder "
                f"({os.path.dirname(os.path.dirname(self.path))}) must be the same folder on every node "
                "(set BATCHAI_SHARED_DIR, or `batchai configure --shared-dir`, to a file system they share)."
            )
        return request

    def request_stop(self, reason: str) -> None:
        """Ask the job's runner to stop the job; the first reason given is the one kept."""
        if self.read(STOP) is None:
            self.write(STOP, {"reason": reason})

    def stop_reason(self) -> str | None:
        stop = self.read(STOP)
        return stop.get("reason") if stop else None

    # -- what the runner and agents write ------------------------------------------------------------

    def report(self, name: str, data: dict) -> None:
        os.makedirs(os.path.dirname(self.file(name)), exist_ok=True)
        self.write(name, data)

    def result_path(self, task: int) -> str:
        return self.file(f"result-{task}.json")

    def lost_path(self, task: int) -> str:
        return self.file(f"lost-{task}")

    def prepared_path(self, task: int) -> str:
        return self.file(f"prepared-{task}")

    def agent_ended(self, task: int) -> bool:
        """Whether task's agent has ended: its result, or (Slurm) the mark of its death."""
        return os.path.exists(self.result_path(task)) or os.path.exists(self.lost_path(task))

    def look_again(self) -> None:
        """Make a network file system (NFS) look at the folder again, instead of trusting a "no such
        file" it may have cached: a poll for a file another node writes calls this first."""
        with contextlib.suppress(OSError):
            os.listdir(self.path)

    def process_groups_path(self, task: int) -> str:
        return self.file(f"pgids-{task}")
