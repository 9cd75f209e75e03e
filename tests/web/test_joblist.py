"""services.joblist.list_jobs_page: the portal's job list, newest first, filtered and paged."""

from __future__ import annotations

import pytest

from batchai_cli import ids
from batchai_cli.errors import NotFound
from batchai_cli.services import open_session
from batchai_cli.services.joblist import list_jobs_page


def seed_jobs(session, workspace, experiments, count):
    """`count` ended jobs spread over `experiments`, job i created at second i (so i is its age rank)."""
    for name in experiments:
        session.state.create(
            workspace.child("experiment", name), {"name": name, "id": str(workspace.child("experiment", name))}
        )
    for index in range(count):
        experiment = experiments[index % len(experiments)]
        rid = workspace.child("experiment", experiment).child("job", f"job{index:05d}")
        state = "succeeded" if index % 3 else "failed"
        session.state.create(
            rid,
            {
                "id": str(rid),
                "name": rid.name,
                "creationTime": f"2026-01-01T{index // 3600:02d}:{index // 60 % 60:02d}:{index % 60:02d}+00:00",
                "executionState": state,
                "executionInfo": {"startTime": None, "endTime": None, "exitCode": 0 if state == "succeeded" else 1},
                "nodeCount": 1,
                "toolType": "custom",
            },
        )


@pytest.fixture
def session(home):
    session = open_session()
    yield session
    session.close()


def test_newest_first_filtered_and_paged(session, batchai):
    assert batchai("workspace", "create", "-g", "rg", "-n", "ws", "-o", "none").code == 0
    workspace = ids.workspace_id(session.subscription, "rg", "ws")
    seed_jobs(session, workspace, ["a", "b"], 120)

    first = list_jobs_page(session, workspace, per_page=50)
    assert (first["total"], first["page"], first["pages"]) == (120, 1, 3)
    assert [j["name"] for j in first["jobs"]] == [f"job{i:05d}" for i in range(119, 69, -1)]
    last = list_jobs_page(session, workspace, per_page=50, page=99)  # past the end: the last page
    assert (last["page"], len(last["jobs"])) == (3, 20)

    failed_b = list_jobs_page(session, workspace, experiment="b", execution_state="failed", per_page=500)
    expected = [f"job{i:05d}" for i in range(119, -1, -1) if i % 2 == 1 and i % 3 == 0]
    assert [j["name"] for j in failed_b["jobs"]] == expected
    assert failed_b["total"] == len(expected)

    with pytest.raises(NotFound):
        list_jobs_page(session, workspace, experiment="nope")
