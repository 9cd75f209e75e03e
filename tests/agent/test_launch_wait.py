"""A Slurm job's batch script starts the agents' srun step before the runner has written the
launch (engines/slurm.py batch_script): the agents wait for it, and give up when the job is
stopped before it comes. A local agent is started after its launch, and never waits."""

from __future__ import annotations

import threading

import pytest

from batchai_cli import bundle as bundles
from batchai_cli.agent import node

JOB_ID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/experiments/exp/jobs/j"
LAUNCH = {"nodes": [0], "node_ids": ["n1"], "ports": [5000], "node_names": ["n1"], "hosts": ["10.0.0.1"]}


@pytest.fixture
def job_bundle(home, tmp_path):
    job_bundle = bundles.Bundle(str(tmp_path / "shared" / "jobs" / "uuid"))
    job_bundle.create()
    body = {"name": "j", "jobOutputDirectoryPathSegment": "0000/rg/workspaces/ws/experiments/exp/jobs/j/uuid"}
    request = {"id": JOB_ID, "body": body, "properties": {"nodeCount": 1}, "options": {}, "cluster": {}}
    job_bundle.write(bundles.REQUEST, request)
    return job_bundle


def set_up(job_bundle, **kwargs) -> tuple[threading.Thread, dict]:
    """NodeRun's set-up in a thread (it blocks while it waits): (the thread, what it gave)."""
    outcome: dict = {}

    def target():
        try:
            outcome["run"] = node.NodeRun(JOB_ID, 0, job_bundle.path, **kwargs)
        except SystemExit as exc:
            outcome["exit"] = str(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def test_a_slurm_agent_waits_for_the_launch(job_bundle):
    thread, outcome = set_up(job_bundle, slurm_node="n1")
    thread.join(0.3)
    assert thread.is_alive() and not outcome  # waiting: there is no launch yet
    job_bundle.write(bundles.LAUNCH, LAUNCH)
    thread.join(30)
    assert not thread.is_alive()
    assert outcome["run"].hosts == ["10.0.0.1"] and outcome["run"].node_id == "n1"


def test_a_slurm_agent_stops_waiting_when_the_job_is_stopped(job_bundle, monkeypatch):
    monkeypatch.setattr(node, "LAUNCH_WAIT", 600.0)
    thread, outcome = set_up(job_bundle, slurm_node="n1")
    thread.join(0.3)
    assert thread.is_alive()
    open(job_bundle.file("stop-agents"), "w").close()  # what the runner writes before it signals
    thread.join(30)
    assert not thread.is_alive()
    assert outcome["exit"] == "The job was stopped before its runner gave this node its launch."


def test_a_local_agent_never_waits(job_bundle):
    thread, outcome = set_up(job_bundle)
    thread.join(30)
    assert not thread.is_alive()
    assert "is missing: no runner started it" in outcome["exit"]
