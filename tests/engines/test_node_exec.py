"""`job node exec` and `cluster node exec` on both engines (engine_lab): a command run on a node in
the job's (or the node's) environment, with its exit code; ports of a node forwarded to 127.0.0.1
here; and the errors a user meets. The CLI runs as its own process, as a user runs it: the command's
output is the CLI's own stdout, and a tunnel is held until a signal.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

from tests.helpers import REPO
from tests.jobs.conftest import until, wait_state

from .conftest import NODES

WAIT = 120
GATED = "while [ ! -e {gate} ]; do sleep 0.05; done"
# Each task of the job: where it runs, then wait for the gate.
RECORD_AND_WAIT = """
import os, time
e = os.environ
open(os.path.join(e["SCRATCH"], "cwd-" + e["AZ_BATCHAI_TASK_INDEX"]), "w").write(os.getcwd())
while not os.path.exists(e["GATE"]):
    time.sleep(0.05)
"""
SECRET_KEY = "c2VjcmV0LWtleS1vZi10aGUtY2xp"  # in the CLI's environment only: never the node's


def cli(*args: str, env: dict | None = None, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "batchai_cli", *args],
        cwd=REPO,
        env={**os.environ, "AZURE_STORAGE_KEY": SECRET_KEY, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    process = cli(*args)
    out, err = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def job_exec(*args: str, job: str = "two") -> tuple[str, ...]:
    return ("job", "node", "exec", "-g", "rg", "-w", "ws", "-e", "exp", "-j", job, *args)


def cluster_exec(*args: str) -> tuple[str, ...]:
    return ("cluster", "node", "exec", "-g", "rg", "-w", "ws", "-c", "c", *args)


def job_nodes(lab, job: str = "two") -> list[str]:
    listing = lab.batchai("job", "node", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-j", job).json()
    return [node["nodeId"] for node in listing]


@pytest.fixture
def running(engine_lab):
    """A two-node job "two" that records, per task, its folder, then waits for its gate."""
    lab = engine_lab
    gate, script = lab.scratch / "gate", lab.scratch / "task.py"
    script.write_text(RECORD_AND_WAIT)
    job = {
        "nodeCount": NODES,
        "stdOutErrPathPrefix": str(lab.out),
        "environmentVariables": [
            {"name": "MYVAR", "value": "my value"},
            {"name": "GATE", "value": str(gate)},
            {"name": "SCRATCH", "value": str(lab.scratch)},
        ],
        "secrets": [{"name": "TOKEN", "value": "t0ken"}],
        # A toolkit that runs on every node of the job (a custom toolkit runs on the first only).
        "pyTorchSettings": {"pythonScriptFilePath": str(script), "pythonInterpreterPath": "python3"},
    }
    assert lab.submit("two", job).code == 0
    wait_state(lab, "two", ("running",), timeout=WAIT)
    until(lambda: all((lab.scratch / f"cwd-{task}").exists() for task in range(NODES)), 60, "both tasks' folders")
    yield lab
    gate.touch()
    lab.wait("two", timeout=WAIT)


def test_job_node_exec_runs_in_the_jobs_environment_on_each_node(running):
    lab = running
    nodes = job_nodes(lab)
    assert len(nodes) == NODES
    script = 'echo "$AZ_BATCHAI_TASK_INDEX|$MYVAR|$TOKEN|$(pwd)|${SLURMD_NODENAME:-}"; env'
    for task, node in enumerate(nodes):
        done = run(*job_exec("-n", node, "--exec", script))
        assert done.returncode == 0, done.stderr
        first, *environment = done.stdout.splitlines()
        index, value, token, cwd, slurm_node = first.split("|")
        assert (index, value, token) == (str(task), "my value", "t0ken")
        assert cwd == (lab.scratch / f"cwd-{task}").read_text().strip()
        assert lab.node_of(cwd) == node if lab.engine == "local" else slurm_node == node
        assert not [line for line in environment if SECRET_KEY in line or line.startswith("AZURE_STORAGE_KEY=")]
    # Without -n: the job's first node.
    done = run(*job_exec("--exec", "echo $AZ_BATCHAI_TASK_INDEX"))
    assert (done.returncode, done.stdout) == (0, "0\n")


def test_job_node_exec_gives_the_commands_exit_code_and_output(running):
    done = run(*job_exec("--exec", "echo out; echo err >&2; exit 3"))
    assert (done.returncode, done.stdout) == (3, "out\n")
    assert "err\n" in done.stderr


def test_job_node_exec_errors_say_what_to_do(running):
    lab = running
    nodes = job_nodes(lab)
    done = run(*job_exec("-n", "nosuch", "--exec", "true"))
    assert done.returncode == 3
    assert "Cannot find a node with id=nosuch." in done.stderr and all(node in done.stderr for node in nodes)
    done = run(*job_exec())
    assert done.returncode == 2
    assert "Nothing to do: give --exec COMMAND, -L LOCALPORT:HOST:REMOTEPORT, or both." in done.stderr
    done = run(*job_exec("-L", "8888:localhost", "--exec", "true"))
    assert done.returncode == 2
    assert '-L "8888:localhost": expected LOCALPORT:HOST:REMOTEPORT, e.g. 8888:localhost:8888' in done.stderr
    done = run(*job_exec("--exec", "true", job="nosuch"))
    assert done.returncode == 3 and "nosuch" in done.stderr
    (lab.scratch / "gate").touch()
    assert lab.wait("two", timeout=WAIT).code == 0
    done = run(*job_exec("--exec", "true"))
    assert done.returncode != 0
    assert 'The job "two" is not running on any node (its state: succeeded).' in done.stderr


class Echo:
    """A TCP server on 127.0.0.1 (every node's loopback here) that sends back what it receives."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def close(self):
        self.server.close()


def forwarded_port(process: subprocess.Popen) -> int:
    line = process.stderr.readline()
    found = re.fullmatch(r"Forwarding 127\.0\.0\.1:(\d+) to 127\.0\.0\.1:\d+ on node \S+\.\n", line)
    assert found, line
    return int(found.group(1))


def round_trip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        sender = threading.Thread(target=lambda: (conn.sendall(payload), conn.shutdown(socket.SHUT_WR)))
        sender.start()
        received = bytearray()
        while chunk := conn.recv(65536):
            received += chunk
        sender.join()
    return bytes(received)


def test_a_forward_carries_connections_to_the_node_until_ctrl_c(running):
    echo = Echo()
    tunnel = cli(*job_exec("-L", f"0:127.0.0.1:{echo.port}"))
    try:
        port = forwarded_port(tunnel)
        assert tunnel.stderr.readline() == "Press Ctrl-C to stop.\n"
        listening = [conn for conn in _listeners() if conn[1] == port]
        assert listening == [("127.0.0.1", port)], "a forward listens on 127.0.0.1 only"
        payload = os.urandom(1 << 20)
        assert round_trip(port, payload) == payload
        assert round_trip(port, b"twice\n") == b"twice\n"
        tunnel.send_signal(signal.SIGINT)
        assert tunnel.wait(timeout=30) == 0
    finally:
        if tunnel.poll() is None:
            tunnel.kill()
        echo.close()


def test_a_forward_lasts_as_long_as_the_command(running):
    echo = Echo()
    gate = running.scratch / "exec-gate"
    command = f"{GATED.format(gate=gate)}; exit 4"
    process = cli(*job_exec("-L", f"0:127.0.0.1:{echo.port}", "--exec", command))
    try:
        port = forwarded_port(process)
        assert round_trip(port, b"while the command runs\n") == b"while the command runs\n"
        gate.touch()
        assert process.wait(timeout=60) == 4
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
        echo.close()


def test_a_local_port_in_use_is_refused(running):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = run(*job_exec("-L", f"{port}:127.0.0.1:22", "--exec", "true"))
    assert done.returncode != 0
    assert f"Cannot listen on 127.0.0.1:{port}:" in done.stderr and "0 for any free port" in done.stderr


def test_cluster_node_exec_runs_on_an_idle_node(engine_lab):
    lab = engine_lab
    listing = lab.batchai("cluster", "node", "list", "-g", "rg", "-w", "ws", "-c", "c").json()
    nodes = [node["nodeId"] for node in listing]
    for node in nodes:
        done = run(*cluster_exec("-n", node, "--exec", 'echo "$(pwd)|$AZ_BATCHAI_MOUNT_ROOT|${SLURMD_NODENAME:-}"'))
        assert done.returncode == 0, done.stderr
        cwd, mount_root, slurm_node = done.stdout.strip().split("|")
        assert mount_root == os.path.join(cwd, "mounts")
        assert lab.node_of(mount_root) == node if lab.engine == "local" else slurm_node == node
    done = run(*cluster_exec("-n", "nosuch", "--exec", "true"))
    assert done.returncode == 3 and "Cannot find a node with id=nosuch." in done.stderr
    done = run(*cluster_exec("--exec", "exit 5"))
    assert done.returncode == 5


def test_cluster_node_exec_on_a_node_a_job_runs_on(running):
    """The command runs beside the job (on Slurm, in the job's allocation: the job holds the node
    whole, so a new allocation would wait for the job's end)."""
    lab = running
    node = job_nodes(lab)[1]
    done = run(*cluster_exec("-n", node, "--exec", 'echo "${SLURM_JOB_ID:-}|${SLURMD_NODENAME:-}"'), timeout=60)
    assert done.returncode == 0, done.stderr
    if lab.engine == "slurm":
        assert done.stdout == f"{lab.slurm_job_id({'name': 'two'})}|{node}\n"


def _listeners() -> list[tuple[str, int]]:
    """(address, port) of every IPv4 TCP socket listening on this machine (/proc/net/tcp)."""
    found = []
    with open("/proc/net/tcp") as handle:
        for line in handle.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.split(":")
                octets = [str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)]
                found.append((".".join(octets), int(port, 16)))
    return found
