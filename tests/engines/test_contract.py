"""The engine contract: what a user sees through the CLI is the same on every engine. Each test runs
once on a local cluster and once on Slurm (`engine_lab`, tests/engines/conftest.py, which holds all
that differs between them): submit, stream, exit code, terminate (running and queued), the wall
clock, a job too large, a killed runner, priority order, a two-node job's tasks and host lists, MPI.

Gates are files the jobs wait for, so nothing depends on how fast a loaded machine is; every wait
is `until(...)` or `job wait` with a generous timeout.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import time

from tests.files.conftest import stream_process
from tests.jobs.conftest import pid_alive, until, wait_for_text, wait_state

from .conftest import NODES, job_processes

GATED = "while [ ! -e {gate} ]; do sleep 0.05; done"
WAIT = 120  # seconds for a job to end: slurm under CI load takes seconds to start one

PROBE = """
import json, os, sys, time
keys = ["AZ_BATCHAI_TASK_INDEX", "AZ_BATCHAI_JOB_TEMP", "AZ_BATCHAI_SHARED_JOB_TEMP", "AZ_BATCHAI_PYTORCH_INIT_METHOD",
        "AZ_BATCHAI_PYTORCH_BACKEND", "SLURMD_NODENAME"]
record = {"args": sys.argv[1:], **{key: os.environ.get(key) for key in keys}}
host_file = os.environ["AZ_BATCHAI_MPI_HOST_FILE"]
while not (os.path.exists(host_file) and open(host_file).read().endswith("\\n")):  # task 0 writes it
    time.sleep(0.05)
record["hostfile"] = open(host_file).read()
print(json.dumps(record), flush=True)
while not os.path.exists(os.environ["GATE"]):
    time.sleep(0.05)
"""


def terminate(lab, name: str):
    return lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", name, "-y")


def node_state_counts(lab) -> dict:
    return lab.batchai("cluster", "show", "-g", "rg", "-w", "ws", "-n", "c").json()["nodeStateCounts"]


def idle_counts(idle: int, running: int = 0) -> dict:
    return {
        "idleNodeCount": idle,
        "leavingNodeCount": 0,
        "preparingNodeCount": 0,
        "runningNodeCount": running,
        "unusableNodeCount": 0,
    }


def test_a_job_runs_and_its_output_lands_in_the_output_folder(engine_lab):
    lab = engine_lab
    job = lab.job(
        "echo hello; echo oops >&2; echo 42 > $AZ_BATCHAI_OUTPUT_MODEL/result.txt",
        outputDirectories=[{"id": "MODEL", "pathPrefix": str(lab.out), "pathSuffix": "models"}],
    )
    created = lab.submit("hello", job)
    assert created.code == 0, created.err
    body = created.json()
    assert (body["executionState"], body["toolType"]) == ("queued", "custom")
    assert body["constraints"] == {"maxWallClockTime": "7 days, 0:00:00"}
    segment = body["jobOutputDirectoryPathSegment"]
    assert segment.startswith("00000000-0000-0000-0000-000000000000/rg/workspaces/ws/experiments/exp/jobs/hello/")
    assert len(segment.rsplit("/", 1)[1]) == 36
    waited = lab.wait("hello", timeout=WAIT)
    assert waited.code == 0, waited.err
    assert "WARNING: Job state: succeeded" in waited.err
    shown = lab.show("hello")
    assert shown["executionState"] == "succeeded"
    assert (shown["executionInfo"]["exitCode"], shown["executionInfo"]["errors"]) == (0, None)
    stdouterr = lab.out / segment / "stdouterr"
    assert sorted(p.name for p in stdouterr.iterdir()) == ["execution.log", "stderr.txt", "stdout.txt"]
    assert (stdouterr / "stdout.txt").read_text() == "hello\n"
    assert (stdouterr / "stderr.txt").read_text() == "oops\n"
    assert "exited with code 0" in (stdouterr / "execution.log").read_text()
    assert (lab.out / segment / "outputs" / "models" / "result.txt").read_text() == "42\n"


def test_job_file_stream_shows_the_output_while_the_job_runs(engine_lab):
    lab = engine_lab
    gate = lab.scratch / "gate"
    lab.submit("talk", lab.job(f"echo first; {GATED.format(gate=gate)}; echo second"))
    stream = stream_process("talk", "-f", "stdout.txt")
    try:
        assert read_stdout(stream, WAIT, b"first\n") == b"first\n"
        # Shown while the job still runs: it waits for the gate, which is not there yet.
        assert lab.show("talk")["executionState"] == "running"
        gate.touch()
        assert read_stdout(stream, WAIT) == b"second\n"
        assert stream.wait(timeout=30) == 0, stream.stderr.read()
    finally:
        if stream.poll() is None:
            stream.kill()
            stream.wait()
    assert lab.show("talk")["executionState"] == "succeeded"


def read_stdout(process: subprocess.Popen, timeout: float, wanted: bytes | None = None) -> bytes:
    """What the process writes to stdout until it has written `wanted` (None: until it closes
    stdout), or `timeout` s have passed. Reads the pipe itself, so nothing is left in a buffer."""
    data = b""
    deadline = time.monotonic() + timeout
    while (wanted is None or wanted not in data) and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
    return data


def test_a_failing_command_gives_its_exit_code(engine_lab):
    lab = engine_lab
    lab.submit("bad", lab.job("echo partial; exit 3"))
    waited = lab.wait("bad", timeout=WAIT)
    assert waited.code == 3
    assert 'WARNING: The job "bad" in resource group "rg" failed.' in waited.err
    assert "Job failed with exit code 3 at" in waited.err
    assert "WARNING: Error message: Job failed with non-zero exit code\nDetails:\n <none>" in waited.err
    shown = lab.show("bad")
    assert (shown["executionState"], shown["executionInfo"]["exitCode"]) == ("failed", 3)
    assert shown["executionInfo"]["errors"] == [
        {"code": "JobFailed", "details": None, "message": "Job failed with non-zero exit code"}
    ]
    assert (lab.stdouterr("bad", lab.out) / "stdout.txt").read_text() == "partial\n"


def test_terminate_stops_every_process_of_a_running_job(engine_lab):
    lab = engine_lab
    marker = lab.scratch / "pids"
    lab.submit("long", lab.job(f"sleep 300 & echo $! > {marker}; echo $$ >> {marker}; wait"))
    shown = wait_state(lab, "long", ("running",), timeout=WAIT)
    until(lambda: marker.exists() and len(marker.read_text().split()) == 2, what="the job's pids")
    pids = [int(pid) for pid in marker.read_text().split()]
    assert all(pid_alive(pid) for pid in pids)
    result = terminate(lab, "long")
    assert result.code == 0, result.err
    after = lab.show("long")
    assert after["executionState"] == "failed"
    assert after["executionInfo"]["errors"][-1]["code"] == "JobTerminated"
    assert not any(pid_alive(pid) for pid in pids)
    assert "Stopped: the job was terminated." in (lab.stdouterr("long", lab.out) / "execution.log").read_text()
    # The engine let the job go, no runner, agent or Slurm step of it is left, and its nodes are free.
    until(lambda: not lab.held(shown), what="the engine to let the terminated job go")
    until(lambda: not job_processes(shown["id"]), what="the job's last process to end")
    until(lambda: node_state_counts(lab) == idle_counts(NODES), what="both nodes idle again")


def mpi_job(lab, marks, command: str) -> dict:
    """A two-node customMpi job of two ranks, each running `command` with $MARKS set to `marks`."""
    return {
        "nodeCount": NODES,
        "stdOutErrPathPrefix": str(lab.out),
        "environmentVariables": [{"name": "MARKS", "value": str(marks)}],
        "customMpiSettings": {"processCount": 2, "commandLine": command},
    }


def test_terminate_stops_every_rank_of_an_mpi_job(engine_lab):
    lab = engine_lab
    marks = lab.scratch / "ranks"
    marks.mkdir()
    rank = "echo $$ > $MARKS/rank-$OMPI_COMM_WORLD_RANK; exec sleep 300"
    job = mpi_job(lab, marks, f"bash -c '{rank}'")
    assert lab.submit("ranks", job).code == 0
    shown = wait_state(lab, "ranks", ("running",), timeout=WAIT)
    until(lambda: len([p for p in marks.iterdir() if p.read_text().strip()]) == 2, 60, "both ranks' pids")
    pids = [int(p.read_text()) for p in marks.iterdir()]
    assert all(pid_alive(pid) for pid in pids)
    assert terminate(lab, "ranks").code == 0
    until(lambda: not any(pid_alive(pid) for pid in pids), 30, "every rank to be stopped")
    until(lambda: not job_processes(shown["id"]), what="the job's last process to end")
    until(lambda: node_state_counts(lab) == idle_counts(NODES), what="both nodes idle again")


def test_terminate_ends_a_queued_job_without_starting_it(engine_lab):
    lab = engine_lab
    gate, started = lab.scratch / "gate", lab.scratch / "started"
    lab.submit("holder", {**lab.job(GATED.format(gate=gate)), "nodeCount": NODES})
    wait_state(lab, "holder", ("running",), timeout=WAIT)
    queued = lab.submit("waiting", lab.job(f"touch {started}")).json()
    assert lab.show("waiting")["executionState"] == "queued"
    assert lab.held(queued)
    result = terminate(lab, "waiting")
    assert result.code == 0, result.err
    shown = lab.show("waiting")
    assert shown["executionState"] == "failed"
    assert shown["executionInfo"]["errors"] == [
        {"code": "JobTerminated", "details": None, "message": "The job was terminated before it started."}
    ]
    assert (shown["executionInfo"]["startTime"], shown["executionInfo"]["exitCode"]) == (None, None)
    until(lambda: not lab.held(queued), what="the engine to let the terminated job go")
    gate.touch()
    assert lab.wait("holder", timeout=WAIT).code == 0
    # With the cluster free, the terminated job still never ran.
    assert lab.show("waiting")["executionState"] == "failed"
    assert not started.exists()


def test_the_wall_clock_limit_stops_the_job(engine_lab):
    lab = engine_lab
    lab.submit("slow", lab.job("echo start; sleep 300", constraints={"maxWallClockTime": "00:00:02"}))
    started = time.monotonic()
    waited = lab.wait("slow", timeout=WAIT)
    assert time.monotonic() - started < WAIT - 10  # far less than the job's 300 s of sleep
    assert waited.code != 0
    shown = lab.show("slow")
    assert shown["executionState"] == "failed"
    error = next(e for e in shown["executionInfo"]["errors"] if e["code"] == "JobMaxWallClockTimeExceeded")
    assert error["message"] == "The job ran longer than its maxWallClockTime (00:00:02) and was stopped."
    assert (lab.stdouterr("slow", lab.out) / "stdout.txt").read_text() == "start\n"


def test_a_job_larger_than_the_cluster_is_refused(engine_lab):
    lab = engine_lab
    result = lab.submit("big", {**lab.job("true"), "nodeCount": NODES + 1})
    assert result.code == 1
    assert result.err == lab.too_large_error(NODES + 1)
    assert result.out == ""
    assert lab.batchai("job", "list", "-g", "rg", "-w", "ws", "-e", "exp").json() == []


def test_a_killed_runner_fails_the_job_on_the_next_look(engine_lab):
    lab = engine_lab
    marker = lab.scratch / "pid"
    lab.submit("orphan", lab.job(f"echo up; sleep 300 & echo $! > {marker}; wait"))
    shown = wait_state(lab, "orphan", ("running",), timeout=WAIT)
    wait_for_text(lab.stdouterr("orphan", lab.out) / "stdout.txt", "up\n", timeout=30)
    until(lambda: marker.exists() and marker.read_text().strip(), what="the job's pid")
    sleeper = int(marker.read_text())
    runner = lab.runner_pid(shown)
    os.kill(runner, signal.SIGKILL)
    # Dead by /proc's state (a dying process's cmdline goes empty before its state does), and lost
    # to the engine.
    until(lambda: not pid_alive(runner) and not lab.held(shown), what="the engine to lose the job's runner")
    after = lab.show("orphan")
    assert after["executionState"] == "failed"
    assert after["executionInfo"]["errors"][-1] == lab.runner_died_error(after, runner)
    until(lambda: not pid_alive(sleeper), what="the job's command to be stopped")
    until(lambda: not job_processes(shown["id"]), what="the job's last process to end")
    # Its node is free for the next job.
    lab.submit("after", lab.job("true"))
    assert lab.wait("after", timeout=WAIT).code == 0


def test_queued_jobs_run_by_priority_then_age(engine_lab):
    lab = engine_lab
    gate, order = lab.scratch / "gate", lab.scratch / "order"
    whole = {"nodeCount": NODES}  # each job takes the whole cluster, so they run one at a time
    lab.submit("first", {**lab.job(f"{GATED.format(gate=gate)}; echo first >> {order}"), **whole})
    wait_state(lab, "first", ("running",), timeout=WAIT)
    for name in ("low", "normal", "high"):
        job = {**lab.job(f"echo {name} >> {order}", schedulingPriority=name), **whole}
        assert lab.submit(name, job).code == 0
    assert [lab.show(name)["executionState"] for name in ("low", "normal", "high")] == ["queued"] * 3
    gate.touch()
    for name in ("first", "low", "normal", "high"):
        assert lab.wait(name, timeout=WAIT).code == 0
    assert order.read_text().split() == ["first", "high", "normal", "low"]


def test_a_two_node_job_has_a_task_on_each_node_and_the_host_lists(engine_lab):
    lab = engine_lab
    gate, script = lab.scratch / "gate", lab.scratch / "probe.py"
    script.write_text(PROBE)
    job = {
        "nodeCount": NODES,
        "stdOutErrPathPrefix": str(lab.out),
        "environmentVariables": [{"name": "GATE", "value": str(gate)}],
        "pyTorchSettings": {
            "pythonScriptFilePath": str(script),
            "pythonInterpreterPath": "python3",
            "commandLineArgs": "--rank $AZ_BATCHAI_TASK_INDEX",
            "communicationBackend": "gloo",
        },
    }
    assert lab.submit("two", job).code == 0
    wait_state(lab, "two", ("running",), timeout=WAIT)
    folder = lab.stdouterr("two", lab.out)
    first_lines = [folder / f"stdout-wk-{task}.txt" for task in (0, 1)]
    until(lambda: all(path.exists() and path.read_text() for path in first_lines), 60, "both workers' first line")
    # While it runs, the job holds both nodes of the cluster.
    cluster = lab.batchai("cluster", "show", "-g", "rg", "-w", "ws", "-n", "c").json()
    assert (cluster["currentNodeCount"], cluster["nodeStateCounts"]) == (NODES, idle_counts(0, running=NODES))
    table = lab.batchai("cluster", "show", "-g", "rg", "-w", "ws", "-n", "c", "-o", "table")
    assert table.out.splitlines()[2].split()[4:] == ["steady", "0", "2", "0", "0", "0"]
    job_nodes = ("job", "node", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-j", "two")
    held = sorted(lab.batchai(*job_nodes).json(), key=lambda node: node["nodeId"])
    assert held == [{"ipAddress": lab.address(node), "nodeId": node, "port": 22} for node in sorted(lab.node_names())]
    assert lab.batchai(*job_nodes, "-o", "table").out.splitlines()[0].split() == ["ID", "IP", "SSH", "Port"]
    gate.touch()
    assert lab.wait("two", timeout=WAIT).code == 0
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [f"execution-{node}.log" for node in lab.node_names()]
        + ["stderr-wk-0.txt", "stderr-wk-1.txt", "stdout-wk-0.txt", "stdout-wk-1.txt"]
    )
    records = [json.loads(path.read_text()) for path in first_lines]
    assert [record["args"] for record in records] == [["--rank", "0"], ["--rank", "1"]]
    assert [record["AZ_BATCHAI_TASK_INDEX"] for record in records] == ["0", "1"]
    # Each task on its own node, in that node's folder; the shared folder is one.
    on = [lab.node_of(record["AZ_BATCHAI_JOB_TEMP"]) for record in records]
    assert sorted(on) == sorted(lab.node_names())
    assert [lab.ran_on(record) for record in records] == on
    shown = lab.show("two")
    assert shown["toolType"] == "pytorch"
    for task, node in enumerate(on):
        started = f"Job two on node {node} (task {task} of 2){lab.allocation_note(shown)}."
        assert started in (folder / f"execution-{node}.log").read_text()
    assert records[0]["AZ_BATCHAI_SHARED_JOB_TEMP"] == records[1]["AZ_BATCHAI_SHARED_JOB_TEMP"]
    # The host lists: PyTorch's rendezvous on the first task's node, the same for both; the MPI host file.
    init_methods = {record["AZ_BATCHAI_PYTORCH_INIT_METHOD"] for record in records}
    assert len(init_methods) == 1
    assert init_methods.pop().rsplit(":", 1)[0] == f"tcp://{lab.address(on[0])}"
    assert [record["AZ_BATCHAI_PYTORCH_BACKEND"] for record in records] == ["gloo", "gloo"]
    assert {sorted_lines(record["hostfile"]) for record in records} == {lab.mpi_host_file(processes=NODES)}
    until(lambda: node_state_counts(lab) == idle_counts(NODES), what="both nodes idle again")
    assert lab.batchai(*job_nodes).json() == []


def test_the_command_starts_once_every_node_is_prepared(engine_lab):
    """Every node's jobPreparation runs before the toolkit starts (batchai-model.md): the master's
    command sees what the other node's slow preparation made."""
    lab = engine_lab
    prep = "if [ $AZ_BATCHAI_TASK_INDEX = 1 ]; then sleep 3; fi; touch {marks}/prepared-$AZ_BATCHAI_TASK_INDEX"
    job = lab.job(f"ls {lab.scratch}", nodeCount=NODES, jobPreparation={"commandLine": prep.format(marks=lab.scratch)})
    assert lab.submit("prep", job).code == 0
    waited = lab.wait("prep", timeout=WAIT)
    folder = lab.stdouterr("prep", lab.out)
    assert waited.code == 0, waited.err
    assert (folder / "stdout.txt").read_text().split() == ["prepared-0", "prepared-1"]


def test_a_node_whose_preparation_fails_stops_the_job_before_its_command(engine_lab):
    lab = engine_lab
    ran = lab.scratch / "ran"
    prep = "if [ $AZ_BATCHAI_TASK_INDEX = 1 ]; then echo no disk >&2; exit 3; fi"
    job = lab.job(f"touch {ran}", nodeCount=NODES, jobPreparation={"commandLine": prep})
    assert lab.submit("badprep", job).code == 0
    assert lab.wait("badprep", timeout=WAIT).code == 1
    shown = lab.show("badprep")
    assert shown["executionState"] == "failed"
    (error,) = shown["executionInfo"]["errors"]
    assert error["details"][0]["name"] == "node"
    other = error["details"][0]["value"]  # task 1's node
    (master,) = set(lab.node_names()) - {other}
    assert (error["code"], error["message"]) == (
        "JobPreparationFailed",
        "The job preparation task failed with exit code 3.",
    )
    assert not ran.exists()  # the master never started the command
    folder = lab.stdouterr("badprep", lab.out)
    assert (folder / f"stderr-job_prep-{other}.txt").read_text() == "no disk\n"
    log = (folder / f"execution-{master}.log").read_text()
    assert "Task 1 of the job ended before it was ready; this node stops." in log


def test_an_agent_killed_while_its_node_prepares_fails_the_job(engine_lab):
    """The master waits for every node to be ready; a node whose agent dies first (alone: its node
    is fine) must not leave it waiting for ever."""
    lab = engine_lab
    ran, preparing = lab.scratch / "ran", lab.scratch / "preparing"
    record_pid = f"echo $$ > {preparing}.tmp; mv {preparing}.tmp {preparing}"
    prep = f"if [ $AZ_BATCHAI_TASK_INDEX = 1 ]; then {record_pid}; sleep 300; fi"
    job = lab.job(f"touch {ran}", nodeCount=NODES, jobPreparation={"commandLine": prep})
    assert lab.submit("lost", job).code == 0
    until(preparing.exists, WAIT, "task 1's preparation")
    os.kill(_agent_above(int(preparing.read_text())), signal.SIGKILL)
    assert lab.wait("lost", timeout=WAIT).code == 1
    errors = lab.show("lost")["executionInfo"]["errors"]
    assert [error["code"] for error in errors] == ["NodeAgentDied"], errors
    assert "killed by SIGKILL" in errors[0]["message"]
    assert not ran.exists()  # the master never started the command


def _agent_above(pid: int) -> int:
    """The nearest process above `pid` that is a batchai agent."""
    while pid > 1:
        with open(f"/proc/{pid}/stat") as handle:
            pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            if b"batchai_cli.agent" in handle.read():
                return pid
    raise AssertionError("no batchai agent above the job's preparation")


def test_an_mpi_job_starts_every_rank(engine_lab):
    assert shutil.which("mpirun"), "Open MPI is needed: apt-get install openmpi-bin (make test-deps does)"
    lab = engine_lab
    marks = lab.scratch / "ranks"
    marks.mkdir()
    rank_script = (
        "import json, os; e = os.environ; "
        "open(os.path.join(e['MARKS'], 'rank-' + e['OMPI_COMM_WORLD_RANK']), 'w').write(json.dumps("
        "{'size': e['OMPI_COMM_WORLD_SIZE'], 'hostfile': open(e['AZ_BATCHAI_MPI_HOST_FILE']).read(), "
        "'task': e['AZ_BATCHAI_TASK_INDEX'], 'AZ_BATCHAI_JOB_TEMP': e['AZ_BATCHAI_JOB_TEMP'], "
        "'SLURMD_NODENAME': e.get('SLURMD_NODENAME')}))"
    )
    job = mpi_job(lab, marks, f'python3 -c "{rank_script}"')
    assert lab.submit("mpi", job).code == 0
    waited = lab.wait("mpi", timeout=WAIT)
    stdouterr = lab.stdouterr("mpi", lab.out)
    assert waited.code == 0, (stdouterr / "stderr.txt").read_text()
    assert lab.show("mpi")["toolType"] == "mpi"
    ranks = {p.name: json.loads(p.read_text()) for p in marks.iterdir()}
    assert sorted(ranks) == ["rank-0", "rank-1"]
    assert [rank["size"] for rank in ranks.values()] == ["2", "2"]
    assert all(sorted_lines(rank["hostfile"]) == lab.mpi_host_file(processes=2) for rank in ranks.values())
    # Each rank runs on its own node, in that node's environment of the job: its task index, its
    # node's folders (on a local cluster too, where every node is this machine).
    on = [lab.node_of(ranks[f"rank-{rank}"]["AZ_BATCHAI_JOB_TEMP"]) for rank in range(2)]
    assert sorted(on) == sorted(lab.node_names())
    assert [lab.ran_on(ranks[f"rank-{rank}"]) for rank in range(2)] == on
    assert [ranks[f"rank-{rank}"]["task"] for rank in range(2)] == ["0", "1"]


def sorted_lines(text: str) -> str:
    return "".join(sorted(text.splitlines(keepends=True)))
