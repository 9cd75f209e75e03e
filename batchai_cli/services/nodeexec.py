"""`cluster node exec` and `job node exec`: a command run on a node, and ports of the node forwarded
to this machine. az did both over SSH to the node's public address; batchai asks the cluster's
engine for the way onto the node (engines/base.py `node_command`: the node itself for a local
cluster, `srun` into the job's allocation on Slurm), so no SSH server or key is needed.

The command runs in the node's environment: for a job, the variables and folder its agent set up
there (agent/shell.py); for a cluster, the node's folder and mount root. A forward listens on
127.0.0.1 only (az listened on every interface), and a local port of 0 is a free port, printed.
Each connection to it is carried to HOST:REMOTEPORT as the node sees them: directly when the
node is this machine, else by `python -m batchai_cli.agent connect` run on the node.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from batchai_cli import bundle as bundles
from batchai_cli import ids
from batchai_cli.engines.base import Cluster, Engine
from batchai_cli.errors import BatchAIError, InvalidState, NotFound, UsageError
from batchai_cli.ids import ResourceId
from batchai_cli.services import Session, jobs
from batchai_cli.services.clusters import cluster_engine, list_remote_login_information


@dataclass(frozen=True)
class Forward:
    local_port: int
    host: str
    remote_port: int

    def __str__(self) -> str:
        return f"{self.local_port}:{self.host}:{self.remote_port}"


def parse_forward(text: str) -> Forward:
    """`LOCALPORT:HOST:REMOTEPORT`, as ssh -L and az's --address take it."""
    local, sep, rest = text.partition(":")
    host, sep2, remote = rest.rpartition(":")
    problem = None
    if not (sep and sep2 and host) or not local.isdigit() or not remote.isdigit():
        problem = "expected LOCALPORT:HOST:REMOTEPORT"
    elif int(local) > 65535 or not 0 < int(remote) <= 65535:
        problem = "ports go from 1 to 65535 (LOCALPORT 0: any free port)"
    if problem:
        raise UsageError(f'-L "{text}": {problem}, e.g. 8888:localhost:8888 or 0:localhost:6006.')
    return Forward(int(local), host.strip("[]"), int(remote))


@dataclass
class Target:
    """A node, the engine that reaches it, and how a command runs there in its environment."""

    engine: Engine
    cluster: Cluster
    handle: dict | None
    node: str
    prefix: list[str]  # the agent's command that sets the node's environment up, then runs argv

    def command(self, argv: list[str]) -> list[str]:
        return self.engine.node_command(self.cluster, self.handle, self.node, [*self.prefix, "--", *argv])

    def channel_command(self, forward: Forward) -> list[str]:
        agent = [sys.executable, "-m", "batchai_cli.agent", "connect", forward.host, str(forward.remote_port)]
        return self.engine.node_command(self.cluster, self.handle, self.node, agent)


def _pick(nodes: list[dict], node_id: str | None, empty: str) -> str:
    if not nodes:
        raise InvalidState(empty)
    if node_id is None:
        return nodes[0]["nodeId"]
    if any(node["nodeId"] == node_id for node in nodes):
        return node_id
    raise NotFound(
        f"Cannot find a node with id={node_id}.",
        hint=f"Its nodes: {', '.join(node['nodeId'] for node in nodes)}.",
    )


def cluster_target(session: Session, rid: ResourceId, node_id: str | None) -> Target:
    nodes = list_remote_login_information(session, rid)
    node = _pick(nodes, node_id, f'No nodes available in the cluster "{rid.name}": resize it first.')
    engine, cluster = cluster_engine(session, rid)
    agent = [sys.executable, "-m", "batchai_cli.agent", "exec-node", node]
    return Target(engine, cluster, _holder(session, rid, engine, cluster, node), node, agent)


def _holder(session: Session, rid: ResourceId, engine: Engine, cluster: Cluster, node: str) -> dict | None:
    """The handle of a job that runs on `node` now: a command there joins that job's allocation
    (a Slurm node a job holds whole takes no other job until it ends)."""
    if engine.nodes_are_here:
        return None
    for run in jobs.reconcile_cluster(session, rid):
        job_id = session.state.get_key_id(run["job_key"]) if run["nodes"] else None
        body = session.state.get(ids.parse(job_id)) if job_id else None
        if body is None:
            continue
        launch = bundles.Bundle.of(body).read(bundles.LAUNCH)
        if any(held["nodeId"] == node for held in engine.job_nodes(cluster, run, launch)):
            return run.get("runner")
    return None


def job_target(session: Session, rid: ResourceId, node_id: str | None) -> Target:
    nodes = jobs.list_remote_login_information(session, rid)  # the job brought up to date, once
    body = session.state.get(rid) or {}
    state = body.get("executionState")
    node = _pick(nodes, node_id, f'The job "{rid.name}" is not running on any node (its state: {state}).')
    engine, cluster = cluster_engine(session, ids.parse(body["cluster"]["id"], expect="cluster"))
    run = session.state.get_run(rid.key) or {}
    bundle = bundles.Bundle.of(body)
    task = [entry["nodeId"] for entry in nodes].index(node)
    agent = [sys.executable, "-m", "batchai_cli.agent", "exec", bundle.path, str(task)]
    return Target(engine, cluster, run.get("runner"), node, agent)


def execute(target: Target, command: str | None, forwards: list[Forward], say: Callable[[str], None]) -> int:
    """Open the forwards, run the command on the node (or, with none, hold the forwards until
    Ctrl-C), close the forwards; the command's exit code."""
    if command is None and not forwards:
        raise UsageError("Nothing to do: give --exec COMMAND, -L LOCALPORT:HOST:REMOTEPORT, or both.")
    tunnels = [Tunnel(target, forward) for forward in forwards]
    try:
        for tunnel in tunnels:
            tunnel.start()
            say(
                f"Forwarding 127.0.0.1:{tunnel.port} to {tunnel.forward.host}:{tunnel.forward.remote_port} "
                f"on node {target.node}."
            )
        if command is None:
            say("Press Ctrl-C to stop.")
            _hold()
            return 0
        return _run(target.command(["bash", "-c", command]))
    finally:
        for tunnel in tunnels:
            tunnel.close()


def _hold() -> None:
    """Wait for Ctrl-C (or SIGTERM, as a service manager stops it)."""
    stopped = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        with contextlib.suppress(KeyboardInterrupt):
            while not stopped.wait(0.5):
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(argv: list[str]) -> int:
    try:
        child = subprocess.Popen(argv)
    except OSError as exc:
        raise BatchAIError(f"Cannot start {argv[0]}: {exc.strerror or exc}") from None
    while True:
        try:
            code = child.wait()
            break
        except KeyboardInterrupt:  # the command got the Ctrl-C too: let it end, and report how
            continue
    return 128 - code if code < 0 else code


class Tunnel:
    """One -L forward: a listener on 127.0.0.1, each connection carried to the node's HOST:PORT."""

    def __init__(self, target: Target, forward: Forward):
        self.target, self.forward = target, forward
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.children: list[subprocess.Popen] = []

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def start(self) -> None:
        try:
            self.listener.bind(("127.0.0.1", self.forward.local_port))
        except OSError as exc:
            self.listener.close()
            raise BatchAIError(
                f"Cannot listen on 127.0.0.1:{self.forward.local_port}: {exc.strerror or exc}.",
                hint="Choose another LOCALPORT, or 0 for any free port.",
            ) from None
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._carry, args=(client,), daemon=True).start()

    def _carry(self, client: socket.socket) -> None:
        with client:
            if self.target.engine.nodes_are_here:
                try:
                    remote = socket.create_connection((self.forward.host, self.forward.remote_port), timeout=10)
                except OSError:
                    return  # the client sees the connection closed, as with ssh -L
                remote.settimeout(None)
                with remote:
                    _splice(client, remote.fileno(), remote.fileno(), lambda: remote.shutdown(socket.SHUT_WR))
                return
            child = subprocess.Popen(
                self.target.channel_command(self.forward), stdin=subprocess.PIPE, stdout=subprocess.PIPE
            )
            self.children.append(child)
            _splice(client, child.stdout.fileno(), child.stdin.fileno(), child.stdin.close)
            with contextlib.suppress(OSError):
                child.stdin.close()
            child.wait()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.listener.close()
        for child in self.children:
            if child.poll() is None:
                child.terminate()


def _splice(client: socket.socket, read_fd: int, write_fd: int, end_write: Callable[[], None]) -> None:
    """Copy client -> write_fd and read_fd -> client until both directions are done."""

    def upstream() -> None:
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(write_fd, view) :]
        with contextlib.suppress(OSError):
            end_write()

    thread = threading.Thread(target=upstream, daemon=True)
    thread.start()
    with contextlib.suppress(OSError):
        while chunk := os.read(read_fd, 65536):
            client.sendall(chunk)
        client.shutdown(socket.SHUT_WR)
    thread.join(timeout=5)
