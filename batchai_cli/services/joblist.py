"""A page of a workspace's jobs, newest first, filtered by state and experiment: the portal's job
list, which must stay fast with 10,000 jobs.

Bodies come straight from the state store (one query per experiment); only the jobs that are still
active, and only those on the page asked for, are folded through `get_job`, so ended jobs cost a
JSON parse each and nothing more.
"""

from __future__ import annotations

from batchai_cli import ids
from batchai_cli.ids import ResourceId
from batchai_cli.services import Session

ACTIVE = ("queued", "running", "terminating")


def list_jobs_page(
    session: Session,
    workspace: ResourceId,
    *,
    experiment: str | None = None,
    execution_state: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> dict:
    """{"jobs": [...], "total": n, "page": p, "pages": k} for one workspace, newest first.

    NotFound when the workspace (or the experiment named) does not exist.
    """
    from batchai_cli.services.experiments import list_experiments
    from batchai_cli.services.jobs import get_job
    from batchai_cli.services.workspaces import not_found

    experiments = [e["name"] for e in list_experiments(session, workspace)]
    if experiment:
        if experiment not in experiments:
            raise not_found(workspace.child("experiment", experiment))
        experiments = [experiment]
    bodies = []
    for name in experiments:
        bodies.extend(session.state.list("job", parent=workspace.child("experiment", name)))
    if execution_state:
        # An active job's stored state may be behind its node reports: fold those before filtering.
        bodies = [_fresh(session, b, get_job) if b.get("executionState") in ACTIVE else b for b in bodies]
        bodies = [b for b in bodies if b.get("executionState") == execution_state]
    bodies.sort(key=lambda b: (b.get("creationTime") or "", b.get("name") or ""), reverse=True)
    per_page = max(1, per_page)
    pages = max(1, -(-len(bodies) // per_page))
    page = min(max(1, page), pages)
    window = bodies[(page - 1) * per_page : page * per_page]
    jobs = [_fresh(session, b, get_job) if b.get("executionState") in ACTIVE else b for b in window]
    return {"jobs": jobs, "total": len(bodies), "page": page, "pages": pages}


def _fresh(session: Session, body: dict, get_job) -> dict:
    return get_job(session, ids.parse(body["id"], expect="job"))
