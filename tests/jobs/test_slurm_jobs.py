"""Jobs on a slurm cluster, beyond the engine contract (tests/engines/, which runs the scenarios
every engine shares): what batchai asks sbatch for, MPI ranks reaching both nodes through srun, a
Slurm job cancelled behind batchai's back, partition limits and checks. Real sbatch and srun
against the session's two-node Slurm (n1, n2 in partition debug; tests/fixtures/slurm.py)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.engines.conftest import job_processes, slurm_job_id
from tests.jobs.conftest import custom, until, wait_state

pytestmark = pytest.mark.integration


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
    slurm_id = slurm_job_id(slurm, "one")
    assert f"Job one on node n1 (task 0 of 1) in Slurm job {slurm_id}." in (folder / "execution.log").read_text()
    fields = slurm_job(slurm, slurm_id)
    assert (fields["JobName"], fields["Partition"], fields["NumNodes"]) == ("batchai-one", "debug", "1")
    # maxWallClockTime (7 days by default) in whole minutes, plus the runner's minute to stop the job.
    assert fields["TimeLimit"] == "7-00:01:00"
    assert fields["Nice"] == "1000"
    assert fields["StdOut"].endswith("/runner.log")


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


def test_priority_and_the_wall_clock_become_nice_and_the_time_limit(slurm_lab, slurm, tmp_path):
    """schedulingPriority is sbatch --nice (Slurm runs the queue by it); maxWallClockTime is the
    time limit in whole minutes, plus the runner's minute to stop the job at the exact limit."""
    lab = slurm_lab
    out = tmp_path / "out"
    lab.submit(
        "urgent",
        custom("true", out, schedulingPriority="high", constraints={"maxWallClockTime": "00:00:02"}),
        cluster="s",
    )
    lab.submit("later", custom("true", out, schedulingPriority="low"), cluster="s")
    for name in ("urgent", "later"):
        assert lab.wait(name).code == 0
    urgent, later = (slurm_job(slurm, slurm_job_id(slurm, name)) for name in ("urgent", "later"))
    assert (urgent["Nice"], urgent["TimeLimit"]) == ("0", "00:02:00")
    assert (later["Nice"], later["TimeLimit"]) == ("2000", "7-00:01:00")


def test_custom_mpi_starts_its_ranks_on_both_slurm_nodes(slurm_lab, tmp_path):
    """mpirun, on task 0, finds itself in a Slurm allocation and starts its daemons with srun on
    the hosts of the host file, which are the job's Slurm nodes: the ranks reach both nodes."""
    assert shutil.which("mpirun"), "Open MPI is needed: apt-get install openmpi-bin (make test-deps does)"
    out, marks = tmp_path / "out", tmp_path / "ranks"
    marks.mkdir()
    job = {
        "nodeCount": 2,
        "stdOutErrPathPrefix": str(out),
        "environmentVariables": [{"name": "MARKS", "value": str(marks)}],
        "customMpiSettings": {
            "processCount": 4,
            "commandLine": 'python3 -c "import os; e = os.environ; '
            "open(e['MARKS'] + '/rank-' + e['OMPI_COMM_WORLD_RANK'], 'w').write(e['SLURMD_NODENAME'])\"",
        },
    }
    assert slurm_lab.submit("mpi", job, cluster="s").code == 0
    waited = slurm_lab.wait("mpi")
    assert waited.code == 0, (slurm_lab.stdouterr("mpi", out) / "stderr.txt").read_text()
    ranks = {p.name: p.read_text() for p in marks.iterdir()}
    assert sorted(ranks) == ["rank-0", "rank-1", "rank-2", "rank-3"]
    assert set(ranks.values()) == {"n1", "n2"}  # Open MPI places them by the nodes' CPUs


def test_a_slurm_job_cancelled_behind_batchais_back_is_reported_failed(slurm_lab, slurm, tmp_path):
    lab = slurm_lab
    out = tmp_path / "out"
    lab.submit("victim", custom("echo up; sleep 300", out), cluster="s")
    wait_state(lab, "victim", ("running",))
    until(lambda: (lab.stdouterr("victim", out) / "stdout.txt").exists(), what="the job's stdout")
    slurm_id = slurm_job_id(slurm, "victim")
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
    assert not job_processes(shown["id"])
    # Its nodes are free for the next job.
    lab.submit("after", custom("true", out), cluster="s")
    assert lab.wait("after").code == 0


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
    fields = slurm_job(slurm, slurm_job_id(slurm, "capped"))
    assert (fields["Partition"], fields["TimeLimit"]) == ("short", "00:05:00")


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


@pytest.mark.parametrize("nodelist", ["n1", "n2", "n1,n2", "n[1-2]", "n[1,2]", "gpu[01-03],n1", "a-b_c"])
def test_node_lists_expand_as_scontrol_expands_them(slurm, monkeypatch, nodelist):
    """A plain list is split without asking Slurm (the runner's path to its agents' srun); the
    names are the ones `scontrol show hostnames` gives, in its order."""
    from batchai_cli.engines.slurm_step import hostnames

    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    assert hostnames(nodelist) == slurm.run("scontrol", "show", "hostnames", nodelist).stdout.split()


def test_a_job_stopped_as_slurm_starts_it_stops_its_waiting_agents(slurm_lab, slurm, tmp_path):
    """The batch script starts the agents' srun before the runner reads the bundle's stop request:
    a job whose stop request is there when Slurm starts it ends as terminated before it started,
    and its agents, waiting for a launch that never comes, stop (nothing is left running)."""
    lab = slurm_lab
    out = tmp_path / "out"
    assert lab.submit("late", custom("echo ran", out), cluster="s").code == 0
    slurm_id = slurm_job_id(slurm, "late")
    assert slurm.run("scontrol", "hold", slurm_id).returncode == 0  # pending until released
    job_uuid = lab.show("late")["jobOutputDirectoryPathSegment"].rsplit("/", 1)[-1]
    bundle = os.path.join(os.environ["BATCHAI_SHARED_DIR"], "jobs", job_uuid)
    # What `job terminate` writes first; its scancel came too late to keep the job from starting.
    with open(os.path.join(bundle, "stop.json"), "w") as handle:
        json.dump({"reason": "JobTerminated"}, handle)
    assert slurm.run("scontrol", "release", slurm_id).returncode == 0
    until(lambda: not slurm.run("squeue", "-h", "-j", slurm_id).stdout.strip(), what="the Slurm job's end")
    shown = lab.show("late")
    assert shown["executionState"] == "failed"
    assert [e["message"] for e in shown["executionInfo"]["errors"]] == ["The job was terminated before it started."]
    assert not (out / shown["jobOutputDirectoryPathSegment"]).exists()  # no agent got as far as its logs
    # The agent stopped by itself when the runner said so, not killed when Slurm ended the job.
    until(lambda: os.path.exists(os.path.join(bundle, "agent-0.log")), what="the agent's log")
    with open(os.path.join(bundle, "agent-0.log")) as log:
        assert "The job was stopped before its runner gave this node its launch." in log.read()
    assert not job_processes(shown["id"])


def test_a_node_slurm_declares_down_under_a_running_job_is_named(slurm_lab, slurm, tmp_path):
    """The node's slurmd dies (its job steps run on) and Slurm declares the node down, as it does
    after SlurmdTimeout; here at once, with scontrol. The runner, alive, sees its agents' srun end:
    the job fails, saying what Slurm says of the node, not only that srun ended."""
    lab = slurm_lab
    out, started = tmp_path / "out", tmp_path / "started"
    assert lab.submit("stranded", custom(f"touch {started}; sleep 120", out), cluster="s").code == 0
    until(started.exists, 60, "the job to start")
    node = slurm.run("squeue", "-h", "-n", "batchai-stranded", "-o", "%N").stdout.strip()
    ended = lab.bundle("stranded") / "reports" / "ended.json"
    slurm.kill_slurmd(node)
    try:
        slurm.run("scontrol", "update", f"nodename={node}", "state=down", "reason=lost in the test")
        # No look at the job until the runner has reported: a look first finds the Slurm job
        # ended (NODE_FAIL) itself, and says "one of its nodes failed".
        until(ended.exists, 60, "the runner to report the job's end")
    finally:
        slurm.start_slurmd(node)
        slurm.run("scontrol", "update", f"nodename={node}", "state=resume")
    [error] = lab.show("stranded")["executionInfo"]["errors"]
    assert error["code"] == "NodeAgentDied", error
    assert error["message"] == (
        f"The agent on node {node} (task 0) ended (srun exited with code 0; Slurm has node {node} down: "
        "lost in the test) before it reported a result; the job was stopped."
    )
    until(lambda: slurm.node_states().get(node) == "idle", 60, f"{node} to be idle again")
