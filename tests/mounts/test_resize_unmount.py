"""Cluster-level mounts live as long as their node (issue 10): a resize down unmounts the
removed nodes' volumes at once, or, for a node still running a job, when that job ends. The
volume is a file server that batchai serves, bind-mounted on each node (real mounts)."""

from __future__ import annotations

import os

import pytest

from batchai_cli.agent import mounts
from tests.jobs.conftest import custom, until, wait_state
from tests.mounts.test_file_servers import _create

pytestmark = pytest.mark.integration


def _node_mounts(lab) -> list[str]:
    """The nodes (their ids' _N part) that have a mount now."""
    points = mounts.mount_points(str(lab.home))
    return sorted(p.split(os.sep + "nodes" + os.sep, 1)[1].split(os.sep, 1)[0].rpartition("_")[2][0] for p in points)


def _resize(lab, target: int) -> None:
    assert (
        lab.batchai("cluster", "resize", "-g", "rg", "-w", "ws", "-n", "two", "-t", str(target), "-o", "none").code == 0
    )


def test_a_resize_down_unmounts_the_removed_nodes_volumes(lab, tmp_path, no_stale_mounts):
    assert _create(lab.batchai, "fs", "-o", "none").code == 0
    lab.cluster("two", 2, "--nfs", "fs")
    out = tmp_path / "out"
    assert lab.submit("both", custom("ls $AZ_BATCHAI_MOUNT_ROOT/nfs", out, nodeCount=2), cluster="two").code == 0
    assert lab.wait("both").code == 0
    assert _node_mounts(lab) == ["1", "2"]  # cluster-level: still mounted after the job
    _resize(lab, 1)
    assert _node_mounts(lab) == ["1"]
    assert lab.batchai("cluster", "delete", "-g", "rg", "-w", "ws", "-n", "two", "-y").code == 0
    assert _node_mounts(lab) == []


def test_a_node_still_running_a_job_keeps_its_volumes_until_the_job_ends(lab, tmp_path, no_stale_mounts):
    assert _create(lab.batchai, "fs", "-o", "none").code == 0
    lab.cluster("two", 2, "--nfs", "fs")
    out, gate = tmp_path / "out", tmp_path / "gate"
    holding = custom(f"while [ ! -e {gate} ]; do sleep 0.05; done", out, nodeCount=2)
    assert lab.submit("long", holding, cluster="two").code == 0
    wait_state(lab, "long", ("running",))
    until(lambda: _node_mounts(lab) == ["1", "2"], 30, "both nodes' mounts")
    _resize(lab, 1)
    assert _node_mounts(lab) == ["1", "2"]  # node 2 is leaving, its job still needs the volume
    gate.touch()
    assert lab.wait("long").code == 0
    until(lambda: _node_mounts(lab) == ["1"], 30, "node 2's mount to go")
    assert lab.batchai("cluster", "delete", "-g", "rg", "-w", "ws", "-n", "two", "-y").code == 0
