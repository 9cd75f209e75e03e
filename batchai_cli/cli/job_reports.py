"""How `job wait` and the `--wait` forms report a job's progress and end on stderr, with az's
messages, and the exit code they exit with. Shared by cli/job.py and cli/job_file.py (which used to
import each other in a circle)."""

from __future__ import annotations

from batchai_cli.services import jobs


def report_wait(app, rid, *, interval: float, timeout: float | None = None) -> int:
    """Follow a job with az's messages on stderr; returns the exit code `job wait` exits with."""
    from batchai_cli import log

    for kind, current in jobs.wait_events(app.session, rid, interval=interval, timeout=timeout):
        info = current.get("executionInfo") or {}
        if kind == "submitted":
            log.warning("Job submitted at %s", current["creationTime"])
        elif kind == "started":
            log.warning("Job started execution at %s", info["startTime"])
        elif kind == "state":
            log.warning("Job state: %s", current["executionState"])
        elif kind == "timeout":
            log.warning("Gave up waiting after %g s; the job is %s.", timeout, current["executionState"])
            return 1
        elif kind == "end":
            return report_end(current)
    return 1


def report_end(current: dict) -> int:
    from batchai_cli import log

    info = current.get("executionInfo") or {}
    took = _duration(info.get("startTime"), info.get("endTime"))
    if current["executionState"] == "succeeded":
        log.warning("Job completed at %s; execution took %s", info.get("endTime"), took)
        return 0
    log.warning(
        'The job "%s" in resource group "%s" failed.',
        current["name"],
        current.get("resourceGroup") or current["id"].split("/")[4],
    )
    if not info:
        log.warning("Failed job has no execution info")
        return 1
    if info.get("exitCode") is None:
        # az printed "exit code None" here; the errors below say what stopped the job.
        log.warning(
            "Job failed at %s before its command gave an exit code; execution took %s", info.get("endTime"), took
        )
    else:
        log.warning(
            "Job failed with exit code %s at %s; execution took %s", info["exitCode"], info.get("endTime"), took
        )
    for err in info.get("errors") or []:
        details = err.get("details")
        # az's shape, without its blank line between "Details:" and the first detail.
        text = "<none>" if not details else "\n ".join(f"{d['name']}: {d['value']}" for d in details)
        log.warning("Error message: %s\nDetails:\n %s", err.get("message"), text)
    code = info.get("exitCode")
    # az exited 0 for a failed job without an exit code; a failure is never 0 here.
    return code if isinstance(code, int) and code != 0 else 1


def _duration(start: str | None, end: str | None) -> str:
    from datetime import datetime

    if not start or not end:
        return "unknown"
    return str(datetime.fromisoformat(end) - datetime.fromisoformat(start))
