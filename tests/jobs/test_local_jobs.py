"""Jobs that really run on a local cluster, beyond the engine contract (tests/engines/, which runs
the scenarios every engine shares): the job's variables, job preparation, bytes kept as they are,
an agent killed, a full disk, local folders, cluster delete. Each test runs real runner and agent
processes."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.fixtures import disks
from tests.helpers import pids_running
from tests.jobs.conftest import custom, pid_alive, until, wait_for_text, wait_state


def test_every_batchai_variable_has_its_value(lab, tmp_path):
    out = tmp_path / "out"
    job = custom(
        "env | grep -E '^(AZ_BATCHAI_|MY_)' | sort",
        out,
        inputDirectories=[{"id": "DATA", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/data/set1"}],
        outputDirectories=[{"id": "OUT", "pathPrefix": str(out)}],
        environmentVariables=[{"name": "MY_VAR", "value": "plain"}],
        secrets=[{"name": "MY_SECRET", "value": "s3cret"}],
    )
    lab.submit("env", job)
    assert lab.wait("env").code == 0
    shown = lab.show("env")
    assert shown["secrets"] == [{"name": "MY_SECRET", "value": None, "valueSecretReference": None}]
    lines = (lab.stdouterr("env", out) / "stdout.txt").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines)
    segment = shown["jobOutputDirectoryPathSegment"]
    node = env["AZ_BATCHAI_JOB_TEMP"].split("/nodes/")[1].split("/")[0]
    home = str(lab.home)
    assert env == {
        "AZ_BATCHAI_INPUT_DATA": f"{home}/nodes/{node}/jobs/ws/exp/env/mounts/data/set1",
        "AZ_BATCHAI_JOB_MOUNT_ROOT": f"{home}/nodes/{node}/jobs/ws/exp/env/mounts",
        "AZ_BATCHAI_JOB_TEMP": f"{home}/nodes/{node}/jobs/ws/exp/env",
        "AZ_BATCHAI_JOB_TEMP_DIR": f"{home}/nodes/{node}/jobs",
        "AZ_BATCHAI_MOUNT_ROOT": f"{home}/nodes/{node}/mounts",
        "AZ_BATCHAI_MPI_HOST_FILE": f"{home}/shared/jobs/{segment.rsplit('/', 1)[1]}/hostfile",
        "AZ_BATCHAI_NUM_GPUS": "0",
        "AZ_BATCHAI_OUTPUT_OUT": f"{out}/{segment}/outputs",
        "AZ_BATCHAI_SHARED_JOB_TEMP": f"{home}/shared/jobs/{segment.rsplit('/', 1)[1]}",
        "AZ_BATCHAI_STDOUTERR_DIR": f"{out}/{segment}/stdouterr",
        "AZ_BATCHAI_TASK_INDEX": "0",
        "MY_SECRET": "s3cret",
        "MY_VAR": "plain",
    }
    assert node.startswith("tvm-") and node.endswith("z")


def test_a_command_that_does_not_exist(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit("nocmd", custom("no-such-command-xyz --flag", out))
    assert lab.wait("nocmd").code == 127
    assert "no-such-command-xyz: command not found" in (lab.stdouterr("nocmd", out) / "stderr.txt").read_text()


def test_job_preparation_runs_first_and_its_failure_fails_the_job(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit(
        "prep",
        custom(
            "cat $AZ_BATCHAI_JOB_TEMP/prepared",
            out,
            jobPreparation={"commandLine": "echo ready > $AZ_BATCHAI_JOB_TEMP/prepared; echo prep"},
        ),
    )
    assert lab.wait("prep").code == 0
    folder = lab.stdouterr("prep", out)
    assert (folder / "stdout.txt").read_text() == "ready\n"
    assert (folder / "stdout-job_prep.txt").read_text() == "prep\n"
    lab.submit("prepfail", custom("echo never", out, jobPreparation={"commandLine": "exit 4"}))
    assert lab.wait("prepfail").code == 4
    shown = lab.show("prepfail")
    codes = [e["code"] for e in shown["executionInfo"]["errors"]]
    assert codes == ["JobFailed", "JobPreparationFailed"]
    assert not (lab.stdouterr("prepfail", out) / "stdout.txt").exists()


def test_invalid_utf8_is_kept_byte_for_byte(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit("bytes", custom(r"printf 'ok \xff\xfe\x80 end\n'; printf '\xc3'", out))
    assert lab.wait("bytes").code == 0
    assert (lab.stdouterr("bytes", out) / "stdout.txt").read_bytes() == b"ok \xff\xfe\x80 end\n\xc3"


def test_terminate_without_a_tty_needs_yes(lab, tmp_path):
    lab.submit("t", custom("true", tmp_path / "out"))
    result = lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "t")
    assert result.code == 1
    assert result.err == "ERROR: Unable to prompt for confirmation as no tty available. Use --yes.\n"


def test_a_job_on_a_cluster_that_does_not_exist(lab, tmp_path):
    result = lab.submit("nocluster", custom("true", tmp_path / "out"), cluster="nope")
    assert result.code == 3
    assert result.err.startswith('ERROR: The cluster "nope" was not found in workspace "ws" (resource group "rg").')


def test_duplicate_job_name(lab, tmp_path):
    lab.submit("dup", custom("true", tmp_path / "out"))
    again = lab.submit("dup", custom("true", tmp_path / "out"))
    assert again.code == 1
    assert again.err.startswith(
        "ERROR: A job with given name, experiment, workspace and resource group already exists."
    )


def test_an_agent_killed_with_sigkill_fails_the_job(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit("victim", custom("echo before; sleep 300", out))
    shown = wait_state(lab, "victim", ("running",))
    uuid = shown["jobOutputDirectoryPathSegment"].rsplit("/", 1)[1]
    wait_for_text(lab.stdouterr("victim", out) / "stdout.txt", "before\n")
    agent_pid = _find_process(f"batchai_cli.agent run {shown['id']}")
    os.kill(agent_pid, signal.SIGKILL)
    assert lab.wait("victim").code == 1
    shown = lab.show("victim")
    assert shown["executionState"] == "failed"
    message = next(e for e in shown["executionInfo"]["errors"] if e["code"] == "NodeAgentDied")["message"]
    assert message == "The agent on node 0 killed by SIGKILL before it reported a result; the job was stopped."
    sleeper = (lab.home / "shared" / "jobs" / uuid / "pgids-0").read_text().split()
    assert not any(pid_alive(int(pid)) for pid in sleeper)


def _find_process(*parts: str, poll: float = 0.05) -> int:
    """The first process whose command line holds every one of `parts` (waiting 10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if found := pids_running(*parts):
            return found[0]
        time.sleep(poll)
    raise AssertionError(f"no process runs {parts!r}")


def _runner_pid(job_id: str) -> int:
    from batchai_cli import ids
    from batchai_cli.state import open_state

    db = open_state()
    try:
        return until(lambda: (db.get_run(ids.parse(job_id).key)["runner"] or {}).get("pid"), 10, "the runner's pid")
    finally:
        db.close()


def test_a_runner_killed_while_its_agent_starts_leaves_nothing_running(lab, tmp_path):
    """The runner SIGKILLed before its agent has started the job's command: the next look fails the
    job and finds no process of it to stop. The agent, going on, must not run the command past the
    job's end (it used to: the job ran on, unwatched, on a node given to the next job)."""
    out, ran = tmp_path / "out", tmp_path / "ran"
    assert lab.submit("late", custom(f"touch {ran}; sleep 120", out)).code == 0
    bundle = str(lab.bundle("late"))  # in every process of the job's, and of no other job's
    agent = _find_process("batchai_cli.agent run", bundle, poll=0.002)
    os.kill(agent, signal.SIGSTOP)  # still starting: it has recorded no process yet
    try:
        assert not os.path.exists(os.path.join(bundle, "pgids-0"))
        os.kill(_runner_pid(lab.show("late")["id"]), signal.SIGKILL)
        wait_state(lab, "late", ("failed",))
        assert [e["code"] for e in lab.show("late")["executionInfo"]["errors"]] == ["JobRunnerDied"]
    finally:
        os.kill(agent, signal.SIGCONT)
    try:
        until(lambda: not pids_running(bundle) and not pids_running(str(ran)), 20, "the job's processes to end")
    finally:
        for group in pids_running(str(ran)):  # the job's shell leads its process group
            os.killpg(group, signal.SIGKILL)
    assert lab.show("late")["executionState"] == "failed"


def test_job_json_stays_valid_json_for_ci(lab, tmp_path):
    """job create -o json gives JSON a CI step can read, with nothing else on stdout."""
    created = lab.submit("ci", custom("true", tmp_path / "out"))
    assert json.loads(created.out)["name"] == "ci"
    assert lab.wait("ci").code == 0


@pytest.mark.slow
def test_twenty_jobs_of_five_megabytes_each_lose_nothing(lab, tmp_path):
    """20 jobs at once, each printing a known 5 MB stream: every byte arrives (checksums)."""
    import hashlib

    lab.batchai("cluster", "resize", "-g", "rg", "-w", "ws", "-n", "c", "-t", "20", "-o", "none")
    out = tmp_path / "out"
    script = tmp_path / "emit.py"
    script.write_text(
        "import sys, hashlib\n"
        "seed = sys.argv[1].encode()\n"
        "out = sys.stdout.buffer\n"
        "for i in range(5 * 1024):\n"
        "    out.write(hashlib.sha256(seed + str(i).encode()).hexdigest().encode() * 16)\n"
    )
    for n in range(20):
        assert lab.submit(f"flood{n}", custom(f"python3 {script} {n}", out)).code == 0
    for n in range(20):
        assert lab.wait(f"flood{n}", timeout=180).code == 0
    for n in range(20):
        expected = hashlib.sha256()
        for i in range(5 * 1024):
            expected.update(hashlib.sha256(f"{n}{i}".encode()).hexdigest().encode() * 16)
        data = (lab.stdouterr(f"flood{n}", out) / "stdout.txt").read_bytes()
        assert len(data) == 5 * 1024 * 1024
        assert hashlib.sha256(data).hexdigest() == expected.hexdigest(), n


@pytest.mark.slow
def test_a_hundred_megabytes_written_quickly_all_arrive(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit("loud", custom("head -c 100000000 /dev/zero | tr '\\0' 'x'", out))
    assert lab.wait("loud", timeout=300).code == 0
    stdout = lab.stdouterr("loud", out) / "stdout.txt"
    assert stdout.stat().st_size == 100_000_000
    with open(stdout, "rb") as handle:
        while chunk := handle.read(1 << 20):
            assert chunk.count(b"x") == len(chunk)


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB file system for the job's output folder (a tmpfs; the tests run as root)."""
    with disks.small_disk(tmp_path / "small") as folder:
        yield folder


def test_a_full_output_disk_fails_the_job_and_keeps_the_log(lab, small_disk, monkeypatch):
    monkeypatch.setenv("BATCHAI_LOG_RETRY_SECONDS", "1")  # the agent's final retries, shortened
    lab.submit("full", custom("head -c 5000000 /dev/zero | tr '\\0' 'y'; echo done", small_disk))
    waited = lab.wait("full", timeout=120)
    assert waited.code == 1
    shown = lab.show("full")
    assert shown["executionState"] == "failed"
    error = next(e for e in shown["executionInfo"]["errors"] if e["code"] == "LogShippingFailed")
    assert error["message"].startswith("stdout.txt: ")
    assert "No space left on device" in error["message"]
    # What could not be written is kept on the node, whole, and the message says where.
    spool = error["message"].split("they are kept in ")[1].rstrip(".")
    with open(spool, "rb") as handle:
        data = handle.read()
    assert len(data) == 5_000_005 and data.endswith(b"ydone\n")


def test_a_local_folder_mount_is_linked(lab, tmp_path):
    """batchai's localFolders extension: a folder of this machine at $AZ_BATCHAI_JOB_MOUNT_ROOT/data."""
    data = tmp_path / "dataset"
    data.mkdir()
    (data / "train.csv").write_text("1,2\n")
    out = tmp_path / "out"
    job = custom(
        "cat $AZ_BATCHAI_JOB_MOUNT_ROOT/data/train.csv; echo new > $AZ_BATCHAI_JOB_MOUNT_ROOT/data/made.txt",
        out,
        mountVolumes={"localFolders": [{"path": str(data), "relativeMountPath": "data"}]},
    )
    assert lab.submit("linked", job).code == 0
    assert lab.wait("linked").code == 0
    assert (lab.stdouterr("linked", out) / "stdout.txt").read_text() == "1,2\n"
    assert (data / "made.txt").read_text() == "new\n"
    clash = custom("true", out, mountVolumes={"localFolders": [{"path": str(data), "relativeMountPath": "afs"}]})
    refused = lab.submit(
        "clash", clash, "--afs-name", "share", "--storage-account-name", "acct", "--storage-account-key", "a2V5"
    )
    assert refused.code == 1
    assert 'two mounts on relativeMountPath "afs"' in refused.err


def test_cluster_delete_ends_its_jobs_with_cluster_deleted(lab, tmp_path):
    """`cluster delete` terminates the cluster's running and queued jobs with its own reason, not
    as if the user had terminated them (terminate_job's reason used to be dropped)."""
    out = tmp_path / "out"
    lab.submit("running", custom("sleep 300", out))
    wait_state(lab, "running", ("running",))
    lab.submit("queued", custom("true", out))
    assert lab.show("queued")["executionState"] == "queued"
    result = lab.batchai("cluster", "delete", "-g", "rg", "-w", "ws", "-n", "c", "-y")
    assert result.code == 0, result.err
    for name, message in (
        ("running", "The cluster the job ran on was deleted."),
        ("queued", "The cluster the job was queued on was deleted."),
    ):
        shown = wait_state(lab, name, ("failed",))
        last = shown["executionInfo"]["errors"][-1]
        assert (last["code"], last["message"]) == ("ClusterDeleted", message), shown["executionInfo"]


@pytest.mark.parametrize(
    "delete",
    [
        ("experiment", "delete", "-g", "rg", "-w", "ws", "-n", "exp", "-y"),
        ("workspace", "delete", "-g", "rg", "-n", "ws", "-y", "--force"),
    ],
    ids=["experiment", "workspace --force"],
)
def test_deleting_what_holds_a_running_job_stops_the_job(lab, tmp_path, delete):
    """A job deleted with its experiment or workspace is terminated first, as `job delete` does:
    nothing of it keeps running with no job left to show it."""
    out, marker = tmp_path / "out", tmp_path / "pid"
    lab.submit("running", custom(f"sleep 300 & echo $! > {marker}; wait", out))
    wait_state(lab, "running", ("running",))
    until(lambda: marker.exists() and marker.read_text().strip(), what="the job's pid")
    sleeper = int(marker.read_text())
    result = lab.batchai(*delete)
    assert result.code == 0, result.err
    until(lambda: not pid_alive(sleeper), 30, "the job's command to be stopped")
    assert lab.batchai("job", "show", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "running").code == 3
