"""Folding a job's reports (bundle.py) into state.db: the only way what nodes did reaches the
control plane. Idempotent: reports only move a job forward (queued -> running -> ended), and each
is applied only while the job is behind it, so folding the same report twice changes nothing.
"""

from __future__ import annotations

from batchai_cli import bundle as bundles
from batchai_cli import state
from batchai_cli.ids import ResourceId


class _Behind(Exception):
    """The job moved on between the look and the write; look again."""


class _Nothing(Exception):
    """The report is already folded."""


def fold(db: state.State, rid: ResourceId, body: dict | None = None) -> bool:
    """Apply the job's started and ended reports to state.db; True when something changed."""
    if body is None:
        body = db.get(rid)
        if body is None:
            return False
    job_bundle = bundles.Bundle.of(body)
    ended = job_bundle.read(bundles.ENDED)
    started = job_bundle.read(bundles.STARTED) if ended is None else None
    if ended is None and started is None:
        return False
    for _attempt in range(5):
        run = db.get_run(rid.key)
        if run is None or run["phase"] not in state.ACTIVE_PHASES:
            return False
        try:
            if ended is not None:
                db.update_job(rid, _ended_change(ended, run["phase"]), phase="ended", nodes=[])
            elif run["phase"] == "queued":
                db.update_job(rid, _started_change(started, "queued"), phase="running", nodes=started["nodes"])
            elif not ((body.get("executionInfo") or {}).get("startTime")):
                # Terminated while queued, but the runner had started: the job did start.
                db.update_job(rid, _started_change(started, run["phase"]), nodes=started["nodes"])
            else:
                return False
        except (_Behind, state.MissingResource):
            continue
        except _Nothing:
            return False
        return True
    return False


def _started_change(report: dict, phase: str):
    def change(body: dict, run: dict) -> dict:
        if run["phase"] != phase:
            raise _Behind
        if (body.get("executionInfo") or {}).get("startTime"):
            raise _Nothing
        if phase != "terminating":
            body["executionState"] = "running"
            body["executionStateTransitionTime"] = report["startTime"]
        body["executionInfo"] = {"startTime": report["startTime"], "endTime": None, "exitCode": None, "errors": None}
        return body

    return change


def _ended_change(report: dict, phase: str):
    def change(body: dict, run: dict) -> dict:
        if run["phase"] != phase:
            raise _Behind
        body["executionState"] = report["executionState"]
        body["executionStateTransitionTime"] = report["endTime"]
        body["executionInfo"] = {
            "startTime": report.get("startTime"),
            "endTime": report["endTime"],
            "exitCode": report.get("exitCode"),
            "errors": report.get("errors"),
        }
        return body

    return change
