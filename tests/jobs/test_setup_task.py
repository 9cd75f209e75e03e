"""The cluster's setup task: run on every node after allocation; nodes prepare, then serve jobs,
or become unusable with the reason in the cluster's errors."""

from __future__ import annotations

import time

from tests.jobs.conftest import custom, until


def _counts(lab, name):
    return lab.batchai("cluster", "show", "-g", "rg", "-w", "ws", "-n", name).json()


def test_setup_task_prepares_every_node_before_jobs_run(lab, tmp_path):
    gate = tmp_path / "gate"
    setup_out = tmp_path / "setup"
    cluster = lab.cluster(
        "prep",
        2,
        "--setup-task",
        f"echo ready > $AZ_BATCHAI_MOUNT_ROOT/../setup-done; while [ ! -e {gate} ]; do sleep 0.05; done; echo set up",
        "--setup-task-output",
        str(setup_out),
    )
    assert cluster["nodeStateCounts"]["preparingNodeCount"] == 2
    suffix = cluster["nodeSetup"]["setupTask"]["stdOutErrPathSuffix"]
    assert suffix.startswith("00000000-0000-0000-0000-000000000000/rg/workspaces/ws/clusters/prep/")
    out = tmp_path / "out"
    lab.submit("early", custom("cat $AZ_BATCHAI_MOUNT_ROOT/../setup-done", out), cluster="prep")
    time.sleep(0.5)
    assert lab.show("early")["executionState"] == "queued"
    gate.touch()
    assert lab.wait("early").code == 0
    assert (lab.stdouterr("early", out) / "stdout.txt").read_text() == "ready\n"
    counts = until(lambda: (c := _counts(lab, "prep"))["nodeStateCounts"]["idleNodeCount"] == 2 and c)
    assert counts["errors"] is None
    files = sorted(p.name for p in (setup_out / suffix).iterdir())
    assert len(files) == 6 and all(f.startswith(("stdout-tvm-", "stderr-tvm-", "execution-tvm-")) for f in files)
    stdout = next(p for p in (setup_out / suffix).iterdir() if p.name.startswith("stdout-"))
    assert stdout.read_text() == "set up\n"


def test_a_failing_setup_task_makes_the_node_unusable(lab, tmp_path):
    lab.cluster("broken", 1, "--setup-task", "echo no disk >&2; exit 5", "--setup-task-output", str(tmp_path / "s"))
    cluster = until(lambda: (c := _counts(lab, "broken"))["nodeStateCounts"]["unusableNodeCount"] == 1 and c)
    (error,) = cluster["errors"]
    assert error["code"] == "SetupTaskFailed"
    assert error["message"].endswith("with exit code 5.")
    table = lab.batchai("cluster", "list", "-g", "rg", "-w", "ws", "-o", "table").out.splitlines()
    assert table[3].split() == ["broken", "rg", "ws", "Standard_NC6", "steady", "0", "0", "0", "0", "1"]


def test_resize_sets_up_the_new_nodes(lab, tmp_path):
    lab.cluster("grow", 1, "--setup-task", "echo hi", "--setup-task-output", str(tmp_path / "s"))
    until(lambda: _counts(lab, "grow")["nodeStateCounts"]["idleNodeCount"] == 1)
    resized = lab.batchai("cluster", "resize", "-g", "rg", "-w", "ws", "-n", "grow", "-t", "3").json()
    assert resized["scaleSettings"]["manual"]["targetNodeCount"] == 3
    until(lambda: _counts(lab, "grow")["nodeStateCounts"]["idleNodeCount"] == 3)
    nodes = lab.batchai("cluster", "node", "list", "-g", "rg", "-w", "ws", "-c", "grow").json()
    assert [n["nodeId"].split("_")[1].split("-")[0] for n in nodes] == ["1", "2", "3"]


def test_deleting_a_cluster_stops_its_setup_task(lab, tmp_path):
    from tests.jobs.conftest import pid_alive

    marker = tmp_path / "pid"
    lab.cluster(
        "stuck", 1, "--setup-task", f"echo $$ > {marker}; sleep 300", "--setup-task-output", str(tmp_path / "s")
    )
    pid = until(lambda: marker.exists() and marker.read_text().strip() and int(marker.read_text()))
    assert pid_alive(pid)
    assert lab.batchai("cluster", "delete", "-g", "rg", "-w", "ws", "-n", "stuck", "-y").code == 0
    until(lambda: not pid_alive(pid), timeout=10, what="the setup task to stop")
