"""Jobs on a slurm cluster: real sbatch and srun against the session's two-node Slurm (n1, n2 in
partition debug; tests/fixtures/slurm.py). Each test runs real runners and agents in Slurm jobs."""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tests.jobs.conftest import custom, pid_alive, until, wait_state

pytestmark = pytest.mark.integration

PROBE = """
import json, os, sys, time
keys = ["AZ_BATCHAI_TASK_INDEX", "AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_PYTORCH_INIT_METHOD",
        "SLURMD_NODENAME", "SLURM_JOB_ID", "FROM_JOB_CREATE"]
print(json.dumps({"args": sys.argv[1:], **{k: os.environ.get(k) for k in keys}}), flush=True)
gate = os.environ.get("GATE")
while gate and not os.path.exists(gate):
    time.sleep(0.05)
"""


@pytest.fixture
def slurm_lab(slurm_home, lab, slurm, tmp_path):
    """The lab, in a home Slurm's nodes cannot see, with cluster "s" on the Slurm partition debug
    (engine settings from cluster.json)."""
    lab.home = slurm_home
    cluster_file = tmp_path / "cluster.json"
    cluster_file.write_text(json.dumps({"properties": {"engine": {"type": "slurm", "partition": "debug"}}}))
    shown = lab.cluster("s", 2, "-f", str(cluster_file))
    assert shown["engine"] == {"partition": "debug", "type": "slurm"}
    return lab


def slurm_job_id(lab, name: str) -> str:
    from batchai_cli import ids
    from batchai_cli.state import open_state

    db = open_state()
    try:
        rid = ids.parse(lab.show(name)["id"], expect="job")
        return db.get_run(rid.key)["runner"]["slurm_job_id"]
    finally:
        db.close()


def slurm_job(slurm, job_id: str) -> dict:
    """scontrol's fields of a Slurm job (JobState, JobName, NodeList...)."""
    import re

    return dict(re.findall(r"(\w+)=(\S*)", slurm.run("scontrol", "show", "job", job_id, "-o").stdout))


def test_a_job_runs_through_sbatch(slurm_lab, slurm, tmp_path, monkeypatch):
    lab = slurm_lab
    out = tmp_path / "out"
    monkeypatch.setenv("FROM_JOB_CREATE", "exported")  # sbatch --export=ALL
    created = lab.submit(
        "one", custom("echo hello from $SLURMD_NODENAME $FROM_JOB_CREATE; echo oops >&2", out), cluster="s"
    )
    assert created.code == 0, created.err
    assert created.json()["executionState"] == "queued"
    waited = lab.wait("one")
    assert waited.code == 0, waited.err
    shown = lab.show("one")
    assert shown["executionState"] == "succeeded" and shown["executionInfo"]["exitCode"] == 0
    folder = lab.stdouterr("one", out)
    assert sorted(p.name for p in folder.iterdir()) == ["execution.log", "stderr.txt", "stdout.txt"]
    assert (folder / "stdout.txt").read_text() == "hello from n1 exported\n"
    assert (folder / "stderr.txt").read_text() == "oops\n"
    slurm_id = slurm_job_id(lab, "one")
    assert f"Job one on node n1 (task 0 of 1) in Slurm job {slurm_id}." in (folder / "execution.log").read_text()
    fields = slurm_job(slurm, slurm_id)
    assert (fields["JobName"], fields["Partition"], fields["NumNodes"]) == ("batchai-one", "debug", "1")
    # maxWallClockTime (7 days by default) in whole minutes, plus the runner's minute to stop the job.
    assert fields["TimeLimit"] == "7-00:01:00"
    assert fields["Nice"] == "1000"
    assert fields["StdOut"].endswith("/runner.log")

    lab.submit("three", custom("echo partial; exit 3", out), cluster="s")
    assert lab.wait("three").code == 3
    assert lab.show("three")["executionInfo"]["errors"][0]["code"] == "JobFailed"
    assert (lab.stdouterr("three", out) / "stdout.txt").read_text() == "partial\n"


def test_slurm_nodes_cannot_see_the_control_plane(slurm_lab, tmp_path):
    """The proof behind every test here: on the nodes, $BATCHAI_HOME (state.db) is not there, yet
    the job runs, from its bundle in the shared folder alone."""
    out = tmp_path / "out"
    db = slurm_lab.home / "state.db"
    assert db.exists()
    # What the node sees there is its own: the node folders the agent made (nodes/n1/...).
    command = f"test -e {db} && echo state.db visible || echo state.db hidden; ls -A {slurm_lab.home}"
    assert slurm_lab.submit("blind", custom(command, out), cluster="s").code == 0
    assert slurm_lab.wait("blind").code == 0
    assert (slurm_lab.stdouterr("blind", out) / "stdout.txt").read_text() == "state.db hidden\nnodes\n"


def test_a_two_node_pytorch_job_has_a_task_on_each_node(slurm_lab, slurm, tmp_path, monkeypatch):
    lab = slurm_lab
    out, gate, script = tmp_path / "out", tmp_path / "gate", tmp_path / "probe.py"
    script.write_text(PROBE)
    monkeypatch.setenv("GATE", str(gate))
    job = {
        "nodeCount": 2,
        "stdOutErrPathPrefix": str(out),
        "pyTorchSettings": {
            "pythonScriptFilePath": str(script),
            "pythonInterpreterPath": "python3",
            "commandLineArgs": "--rank $AZ_BATCHAI_TASK_INDEX",
        },
    }
    assert lab.submit("torch", job, cluster="s").code == 0
    wait_state(lab, "torch", ("running",))
    folder = lab.stdouterr("torch", out)
    until(
        lambda: all(
            (folder / f"stdout-wk-{i}.txt").exists() and (folder / f"stdout-wk-{i}.txt").read_text() for i in (0, 1)
        ),
        what="both workers' first line",
    )
    # While it runs: both nodes of the partition are running, and the job holds n1 and n2.
    counts = lab.batchai("cluster", "show", "-g", "rg", "-w", "ws", "-n", "s").json()
    assert counts["currentNodeCount"] == 2
    assert counts["nodeStateCounts"] == {
        "idleNodeCount": 0,
        "leavingNodeCount": 0,
        "preparingNodeCount": 0,
        "runningNodeCount": 2,
        "unusableNodeCount": 0,
    }
    table = lab.batchai("cluster", "show", "-g", "rg", "-w", "ws", "-n", "s", "-o", "table")
    assert table.out.splitlines()[2].split()[4:] == ["steady", "0", "2", "0", "0", "0"]
    nodes = lab.batchai("job", "node", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-j", "torch").json()
    assert nodes == [
        {"ipAddress": "127.0.0.1", "nodeId": "n1", "port": 22},
        {"ipAddress": "127.0.0.1", "nodeId": "n2", "port": 22},
    ]
    gate.touch()
    assert lab.wait("torch").code == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "execution-n1.log",
        "execution-n2.log",
        "stderr-wk-0.txt",
        "stderr-wk-1.txt",
        "stdout-wk-0.txt",
        "stdout-wk-1.txt",
    ]
    first, second = (json.loads((folder / f"stdout-wk-{i}.txt").read_text()) for i in (0, 1))
    assert (first["args"], second["args"]) == (["--rank", "0"], ["--rank", "1"])
    assert (first["SLURMD_NODENAME"], second["SLURMD_NODENAME"]) == ("n1", "n2")
    assert first["SLURM_JOB_ID"] == second["SLURM_JOB_ID"] == slurm_job_id(lab, "torch")
    assert "/nodes/n1/" in first["AZ_BATCHAI_JOB_TEMP"] and "/nodes/n2/" in second["AZ_BATCHAI_JOB_TEMP"]
    assert first["AZ_BATCHAI_SHARED_JOB_TEMP"] == second["AZ_BATCHAI_SHARED_JOB_TEMP"]
    assert first["AZ_BATCHAI_PYTORCH_INIT_METHOD"] == second["AZ_BATCHAI_PYTORCH_INIT_METHOD"]
    assert first["AZ_BATCHAI_PYTORCH_INIT_METHOD"].startswith("tcp://127.0.0.1:")
    assert "(task 1 of 2)" in (folder / "execution-n2.log").read_text()
    until(
        lambda: (
            lab.batchai("cluster", "show", "-g", "rg", "-w", "ws", "-n", "s").json()["nodeStateCounts"]["idleNodeCount"]
            == 2
        ),
        what="both nodes idle again",
    )


def test_custom_mpi_starts_its_ranks_through_slurm(slurm_lab, tmp_path):
    """mpirun, on task 0, finds itself in a Slurm allocation and starts its daemons with srun on
    the hosts of the host file, which are the job's Slurm nodes."""
    assert shutil.which("mpirun"), "Open MPI is needed: apt-get install openmpi-bin (make test-deps does)"
    out = tmp_path / "out"
    job = {
        "nodeCount": 2,
        "stdOutErrPathPrefix": str(out),
        "customMpiSettings": {
            "processCount": 4,
            "commandLine": "python3 -c \"import os; r = os.environ['OMPI_COMM_WORLD_RANK']; "
            "open(os.environ['AZ_BATCHAI_SHARED_JOB_TEMP'] + '/rank-' + r, 'w')"
            ".write(os.environ['SLURMD_NODENAME'])\"",
        },
    }
    assert slurm_lab.submit("mpi", job, cluster="s").code == 0
    waited = slurm_lab.wait("mpi")
    shown = slurm_lab.show("mpi")
    assert waited.code == 0, (out / shown["jobOutputDirectoryPathSegment"] / "stdouterr" / "stderr.txt").read_text()
    shared = slurm_lab.bundle("mpi")
    ranks = {p.name: p.read_text() for p in shared.glob("rank-*")}
    assert sorted(ranks) == ["rank-0", "rank-1", "rank-2", "rank-3"]
    assert set(ranks.values()) == {"n1", "n2"}  # Open MPI places them by the nodes' CPUs
    assert (shared / "hostfile").read_text() == "n1 slots=4\nn2 slots=4\n"


def test_terminate_stops_every_process_of_a_running_slurm_job(slurm_lab, slurm, tmp_path):
    lab = slurm_lab
    out, marker = tmp_path / "out", tmp_path / "pid"
    lab.submit("long", custom(f"sleep 300 & echo $! > {marker}; echo $$ >> {marker}; wait", out), cluster="s")
    shown = wait_state(lab, "long", ("running",))
    until(lambda: marker.exists() and len(marker.read_text().split()) == 2, what="the job's pids")
    pids = [int(pid) for pid in marker.read_text().split()]
    assert all(pid_alive(pid) for pid in pids)
    slurm_id = slurm_job_id(lab, "long")
    result = lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "long", "-y")
    assert result.code == 0, result.err
    shown = lab.show("long")
    assert shown["executionState"] == "failed"
    assert [e["code"] for e in shown["executionInfo"]["errors"]][-1] == "JobTerminated"
    assert not any(pid_alive(pid) for pid in pids)
    assert "Stopped: the job was terminated." in (lab.stdouterr("long", out) / "execution.log").read_text()
    # The runner ended the Slurm job itself, and no agent or runner is left.
    until(lambda: slurm_job(slurm, slurm_id).get("JobState") == "COMPLETED", what="the Slurm job's end")
    assert not _processes(shown["id"])


def test_terminate_removes_a_pending_job_from_slurms_queue(slurm_lab, slurm, tmp_path, monkeypatch):
    lab = slurm_lab
    gate = tmp_path / "gate"
    lab.submit(
        "holder",
        {**custom(f"while [ ! -e {gate} ]; do sleep 0.05; done", tmp_path / "out"), "nodeCount": 2},
        cluster="s",
    )
    wait_state(lab, "holder", ("running",))
    lab.submit("waiting", custom("echo never", tmp_path / "out"), cluster="s")
    slurm_id = slurm_job_id(lab, "waiting")
    assert slurm_job(slurm, slurm_id)["JobState"] == "PENDING"
    assert lab.show("waiting")["executionState"] == "queued"
    assert lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "waiting", "-y").code == 0
    shown = lab.show("waiting")
    assert shown["executionState"] == "failed"
    assert shown["executionInfo"]["errors"] == [
        {"code": "JobTerminated", "details": None, "message": "The job was terminated before it started."}
    ]
    assert slurm_job(slurm, slurm_id)["JobState"] == "CANCELLED"
    gate.touch()
    assert lab.wait("holder").code == 0


def test_a_job_larger_than_the_partition_is_refused(slurm_lab, tmp_path):
    result = slurm_lab.submit("big", {**custom("true", tmp_path / "out"), "nodeCount": 3}, cluster="s")
    assert result.code == 1
    assert result.err == (
        'ERROR: The job needs 3 nodes, but cluster "s" runs on Slurm partition "debug", which has 2. Lower '
        "nodeCount, or use a cluster on a larger partition (sinfo -s lists them).\n"
    )
    assert slurm_lab.batchai("job", "list", "-g", "rg", "-w", "ws", "-e", "exp").json() == []


def test_a_slurm_job_cancelled_behind_batchais_back_is_reported_failed(slurm_lab, slurm, tmp_path):
    lab = slurm_lab
    out = tmp_path / "out"
    lab.submit("victim", custom("echo up; sleep 300", out), cluster="s")
    wait_state(lab, "victim", ("running",))
    until(lambda: (lab.stdouterr("victim", out) / "stdout.txt").exists(), what="the job's stdout")
    slurm_id = slurm_job_id(lab, "victim")
    assert slurm.run("scancel", slurm_id).returncode == 0
    until(lambda: not slurm.run("squeue", "-h", "-j", slurm_id).stdout.strip(), what="the Slurm job's end")
    shown = lab.show("victim")
    assert shown["executionState"] == "failed"
    # The runner records it when it can stop the agents within Slurm's KillWait (5 s here), else
    # the next look finds the Slurm job CANCELLED; either way the error names the Slurm job.
    error = shown["executionInfo"]["errors"][-1]
    assert error["code"] == "SlurmJobEnded"
    assert error["message"] in (
        f"Slurm stopped the job (Slurm job {slurm_id}) before it ended: it was cancelled in Slurm (scancel, an "
        "administrator), reached a Slurm time limit, or lost a node.",
        f"Slurm job {slurm_id} ended (CANCELLED, exit code 0:15) without the job's end being recorded: it was "
        "cancelled in Slurm (scancel, or an administrator). See runner.log in the job's shared folder.",
    )
    assert not _processes(shown["id"])
    # Its nodes are free for the next job.
    lab.submit("after", custom("true", out), cluster="s")
    assert lab.wait("after").code == 0


def test_a_runner_killed_inside_slurm_is_found_by_job_show(slurm_lab, slurm, tmp_path):
    lab = slurm_lab
    out = tmp_path / "out"
    lab.submit("orphan", custom("echo up; sleep 300", out), cluster="s")
    shown = wait_state(lab, "orphan", ("running",))
    slurm_id = slurm_job_id(lab, "orphan")
    runner = _processes(f"batchai_cli.engines.runner --slurm {shown['id']}")
    assert len(runner) == 1
    os.kill(runner[0], 9)
    until(lambda: not slurm.run("squeue", "-h", "-j", slurm_id).stdout.strip(), what="the Slurm job's end")
    error = lab.show("orphan")["executionInfo"]["errors"][-1]
    assert error["code"] == "SlurmJobEnded"
    assert error["message"].startswith(
        f"Slurm job {slurm_id} ended (FAILED, exit code 0:9) without the job's end "
        "being recorded: its runner ended early (killed or crashed)."
    )
    until(lambda: not _processes(shown["id"]), what="the agent's end")


def test_the_wall_clock_limit_is_exact_under_slurm(slurm_lab, slurm, tmp_path):
    lab = slurm_lab
    out = tmp_path / "out"
    lab.submit("slow", custom("echo start; sleep 60", out, constraints={"maxWallClockTime": "00:00:02"}), cluster="s")
    started = time.monotonic()
    assert lab.wait("slow").code != 0
    assert time.monotonic() - started < 30
    errors = lab.show("slow")["executionInfo"]["errors"]
    assert any(e["code"] == "JobMaxWallClockTimeExceeded" for e in errors)
    assert slurm_job(slurm, slurm_job_id(lab, "slow"))["TimeLimit"] == "00:02:00"


def test_a_partition_time_limit_caps_the_job(lab, slurm, tmp_path):
    """Batch AI's default maxWallClockTime is 7 days; a partition allowing less would keep the job
    pending for ever, so the job asks for the partition's limit, and job create says so."""
    cluster_file = tmp_path / "cluster.json"
    cluster_file.write_text(json.dumps({"properties": {"engine": {"type": "slurm", "partition": "short"}}}))
    lab.cluster("q", 1, "-f", str(cluster_file))
    created = lab.submit("capped", custom("true", tmp_path / "out"), cluster="q")
    assert created.code == 0
    assert created.err == (
        "WARNING: maxWallClockTime is longer than Slurm partition short allows (5 minutes): Slurm "
        "will stop the job after 5 minutes.\n"
    )
    assert lab.wait("capped").code == 0
    fields = slurm_job(slurm, slurm_job_id(lab, "capped"))
    assert (fields["Partition"], fields["TimeLimit"]) == ("short", "00:05:00")


def test_slurm_runs_queued_jobs_by_priority(slurm_lab, slurm, tmp_path):
    """schedulingPriority is sbatch --nice: with the partition busy, high runs before normal before low."""
    lab = slurm_lab
    out, gate, order = tmp_path / "out", tmp_path / "gate", tmp_path / "order"
    whole = {"nodeCount": 2}  # each job takes the whole partition, so they run one at a time
    lab.submit(
        "first",
        {**custom(f"while [ ! -e {gate} ]; do sleep 0.05; done; echo first >> {order}", out), **whole},
        cluster="s",
    )
    wait_state(lab, "first", ("running",))
    for name, priority in (("low", "low"), ("normal", "normal"), ("high", "high")):
        job = {**custom(f"echo {name} >> {order}", out, schedulingPriority=priority), **whole}
        assert lab.submit(name, job, cluster="s").code == 0
    assert [lab.show(name)["executionState"] for name in ("low", "normal", "high")] == ["queued"] * 3
    nice = {name: slurm_job(slurm, slurm_job_id(lab, name))["Nice"] for name in ("low", "normal", "high")}
    assert nice == {"low": "2000", "normal": "1000", "high": "0"}
    gate.touch()
    for name in ("first", "low", "normal", "high"):
        assert lab.wait(name).code == 0
    assert order.read_text().split() == ["first", "high", "normal", "low"]


def test_cluster_create_checks_the_partition(lab, slurm, tmp_path):
    cluster_file = tmp_path / "cluster.json"
    cluster_file.write_text(json.dumps({"properties": {"engine": {"type": "slurm", "partition": "gpu"}}}))
    result = lab.create_cluster("g", 1, "-f", str(cluster_file))
    assert result.code == 1
    assert result.err == (
        'ERROR: Slurm has no partition "gpu" (it has: debug, short). Set engine.partition in '
        "cluster.json to one of them.\n"
    )


def test_a_slurm_controller_that_does_not_answer(lab, slurm, tmp_path, monkeypatch):
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "\n".join(
            "SlurmctldPort=1" if line.startswith("SlurmctldPort=") else line
            for line in slurm.conf.read_text().splitlines()
        )
        + "\n"
    )
    monkeypatch.setenv("SLURM_CONF", str(conf))
    result = lab.create_cluster("g", 1, "--engine", "slurm")
    assert result.code == 1
    assert result.err.startswith(
        "ERROR: Cannot find Slurm's default partition: sinfo: slurm_load_partitions: "
        "Unable to contact slurm controller (connect failure) Check that slurmctld is "
        "running and answering"
    )
    assert len(result.err.splitlines()) == 1


def _processes(needle: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def test_resizing_a_slurm_cluster_says_the_partition_decides(slurm_lab):
    result = slurm_lab.batchai("cluster", "resize", "-g", "rg", "-w", "ws", "-n", "s", "-t", "5", "-o", "none")
    assert result.code == 0
    assert result.err == (
        'WARNING: Cluster "s" runs on Slurm: its scale settings are kept, but the partition\'s nodes decide '
        "where jobs run.\n"
    )


def test_job_list_asks_slurm_once_for_all_active_jobs(slurm_lab, slurm, tmp_path, monkeypatch):
    """Reads stay cheap: `job list` with three active Slurm jobs (two running, one pending) runs
    one squeue, not one per job. squeue is the real one, behind a wrapper that counts its calls."""
    lab = slurm_lab
    gate, out = tmp_path / "gate", tmp_path / "out"
    for name in ("a", "b", "c"):
        assert lab.submit(name, custom(f"while [ ! -e {gate} ]; do sleep 0.05; done", out), cluster="s").code == 0
    until(lambda: len([j for j in _states(lab) if j == "running"]) == 2, 60, "two running jobs")
    calls = tmp_path / "squeue-calls"
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    (wrappers / "squeue").write_text(f'#!/bin/sh\necho "$@" >> {calls}\nexec {shutil.which("squeue")} "$@"\n')
    (wrappers / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrappers}{os.pathsep}{os.environ['PATH']}")
    assert sorted(_states(lab)) == ["queued", "running", "running"]
    assert len(calls.read_text().splitlines()) == 1
    gate.touch()
    for name in ("a", "b", "c"):
        assert lab.wait(name, timeout=90).code == 0


def _states(lab) -> list[str]:
    listing = lab.batchai("job", "list", "-g", "rg", "-w", "ws", "-e", "exp", "--query", "[].executionState")
    assert listing.code == 0, listing.err
    return listing.json()
