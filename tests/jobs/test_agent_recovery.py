"""A killed agent loses no output (hardening item 4): what the job wrote is in the node's spool,
and the runner that finds the agent dead ships the rest, on a local cluster and under Slurm (where
the runner does it on the dead agent's node, with srun --overlap)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.helpers import pids_running
from tests.jobs.conftest import custom, until, wait_state

pytestmark = pytest.mark.integration

LINES = 200_000
EXPECTED = "".join(f"{n}\n" for n in range(1, LINES + 1))


def _agent_pid(needle: str) -> int:
    return until(lambda: next(iter(pids_running(needle)), None), 30, f"a process running {needle!r}")


def _kill_agent_right_after_output(lab, name: str, out, gate, needle: str) -> dict:
    """Run a job that prints LINES numbered lines and then waits; SIGKILL its agent the moment the
    job has printed them all, before the shipper (every 0.25 s) can have sent them all."""
    shown = wait_state(lab, name, ("running",), timeout=60)
    pid = _agent_pid(f"{needle} {shown['id']}")
    until(gate.exists, 60, "the job to print its lines")
    os.kill(pid, signal.SIGKILL)
    waited = lab.wait(name, timeout=120)
    assert waited.code != 0
    return lab.show(name)


def _job(out, gate) -> dict:
    return custom(f"seq 1 {LINES}; touch {gate}; sleep 300", out)


def test_a_killed_local_agents_output_reaches_storage(lab, tmp_path):
    out, gate = tmp_path / "out", tmp_path / "printed"
    assert lab.submit("victim", _job(out, gate)).code == 0
    shown = _kill_agent_right_after_output(lab, "victim", out, gate, "batchai_cli.agent run")
    assert [e["code"] for e in shown["executionInfo"]["errors"]] == ["NodeAgentDied"]
    folder = lab.stdouterr("victim", out)
    assert (folder / "stdout.txt").read_text() == EXPECTED
    assert "were recovered from the node's spool." in (folder / "execution.log").read_text()


@pytest.fixture
def slurm_cluster(slurm_home, lab, slurm, tmp_path):
    lab.home = slurm_home
    cluster_file = tmp_path / "cluster.json"
    cluster_file.write_text(json.dumps({"properties": {"engine": {"type": "slurm", "partition": "debug"}}}))
    lab.cluster("s", 2, "-f", str(cluster_file))
    return lab


def test_a_killed_slurm_agents_output_reaches_storage(slurm_cluster, tmp_path):
    lab = slurm_cluster
    out, gate = tmp_path / "out", tmp_path / "printed"
    assert lab.submit("victim", _job(out, gate), cluster="s").code == 0
    shown = _kill_agent_right_after_output(lab, "victim", out, gate, "batchai_cli.agent run-slurm")
    assert "NodeAgentDied" in [e["code"] for e in shown["executionInfo"]["errors"]]
    folder = lab.stdouterr("victim", out)
    deadline = time.monotonic() + 10
    while (folder / "stdout.txt").read_text() != EXPECTED and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (folder / "stdout.txt").read_text() == EXPECTED
    assert "were recovered from the node's spool." in (folder / "execution.log").read_text()
