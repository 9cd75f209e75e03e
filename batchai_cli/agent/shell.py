"""What runs on a node beside a job, started by `batchai ... node exec` or by Open MPI:

    python -m batchai_cli.agent exec <bundle> <task> -- ARGV...   ARGV in a job's environment on its node
    python -m batchai_cli.agent exec-node <node-id> -- ARGV...    ARGV on an idle node of a cluster
    python -m batchai_cli.agent rsh <bundle> <host> WORDS...      Open MPI's remote shell (plm_rsh_agent)
    python -m batchai_cli.agent orted <bundle> ARGS...            Open MPI's daemon on a Slurm node
                                                                  (orte_launch_agent)
    python -m batchai_cli.agent connect <host> <port>             a port forward's channel: stdin/stdout
                                                                  to a TCP connection from the node

A job's environment on a node is what its agent recorded in the job's bundle (env-<task>.json,
agent/environment.py): the variables batchai set and the job's folder. What the command inherits
is its own environment, filtered as the job's is: batchai's credentials never reach it.

On a local cluster every node is this machine, so a multi-node job's mpirun would start every rank
in the first node's environment. Instead mpirun reaches the "hosts" of its host file (the node ids)
through `rsh`, which starts Open MPI's daemon for a node in that node's environment; the ranks it
starts inherit it (AZ_BATCHAI_TASK_INDEX, the node's folders, its mount roots).

Under Slurm, mpirun starts its daemons on the other nodes with srun, which hands them mpirun's own
environment: the first node's. There Open MPI's launch agent is `orted` below, which finds its node
($SLURMD_NODENAME) among the job's and starts the daemon in that node's environment of the job.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import sys
import threading
import time

from batchai_cli import bundle as bundles
from batchai_cli import private
from batchai_cli.agent import environment, layout

# How long `rsh` waits for a node's agent to record its environment (it may still be mounting).
RECORD_WAIT = 120.0
RSH_SHIM = "rsh"
ORTED_SHIM = "orted"


def mpi_host(node_id: str) -> str:
    """A local node's name in the MPI host file: its id, made a host name (Open MPI refuses '_')."""
    return node_id.replace("_", "-")


def write_rsh_shim(bundle: bundles.Bundle) -> str:
    """An executable in the bundle that Open MPI runs as `<shim> <host> <command words>`."""
    return _write_shim(bundle, RSH_SHIM, "rsh")


def write_launch_agent(bundle: bundles.Bundle) -> str:
    """An executable in the bundle that Open MPI runs, on a node, instead of `orted ARGS...`."""
    return _write_shim(bundle, ORTED_SHIM, "orted")


def _write_shim(bundle: bundles.Bundle, name: str, verb: str) -> str:
    path = bundle.file(name)
    command = f"exec {shlex.quote(sys.executable)} -m batchai_cli.agent {verb} {shlex.quote(bundle.path)}"
    private.write_whole(path, f'#!/bin/sh\n{command} "$@"\n', mode=0o700)
    return path


def job_environment(bundle: bundles.Bundle, task: int, *, wait: float = 0.0) -> tuple[dict[str, str], str]:
    """(environment, folder) of the job on task `task`'s node, once its agent has recorded them."""
    deadline = time.monotonic() + wait
    while (record := bundle.read(environment.record_name(task))) is None:
        if time.monotonic() >= deadline:
            raise SystemExit(
                f"batchai: node {task} of the job has not prepared its environment yet "
                f"({bundle.file(environment.record_name(task))} is missing)."
            )
        time.sleep(0.05)
        bundle.look_again()
    named = set(record.get("secrets") or [])
    secrets = {
        secret["name"]: secret["value"]
        for secret in bundle.request()["properties"].get("secrets") or []
        if secret["name"] in named and secret.get("value") is not None
    }
    return {**environment.inherited(os.environ), **record["variables"], **secrets}, record["cwd"]


def node_environment(node_id: str) -> tuple[dict[str, str], str]:
    root = layout.node_root(node_id)
    os.makedirs(os.path.join(root, "mounts"), exist_ok=True)
    return {**environment.inherited(os.environ), **environment.node_variables(root)}, root


def run_in(env: dict[str, str], cwd: str, argv: list[str]) -> int:
    """Replace this process with argv, in env and cwd (a clear message when it cannot start)."""
    try:
        os.chdir(cwd)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        print(f"batchai: cannot run {argv[0]} on this node: {exc.strerror or exc}", file=sys.stderr)
        return 127


def rsh(bundle_path: str, host: str, words: list[str]) -> int:
    """Open MPI's remote shell for a local multi-node job: run the command line (as ssh would, by
    the shell) on the node whose id is `host`, in that node's environment of the job."""
    bundle = bundles.adopt(bundle_path)
    launch = bundle.read(bundles.LAUNCH) or {}
    hosts = [mpi_host(node) for node in launch.get("node_ids") or []]
    if host not in hosts:
        print(f"batchai rsh: {host} is not a node of this job (its nodes: {', '.join(hosts)}).", file=sys.stderr)
        return 255
    env, cwd = job_environment(bundle, hosts.index(host), wait=RECORD_WAIT)
    return run_in(env, cwd, ["bash", "-c", " ".join(words)])


def orted(bundle_path: str, args: list[str]) -> int:
    """Open MPI's daemon on this Slurm node, in this node's environment of the job."""
    bundle = bundles.adopt(bundle_path)
    names = (bundle.read(bundles.LAUNCH) or {}).get("node_names") or []
    node = os.environ.get("SLURMD_NODENAME", "")
    if node not in names:
        print(f"batchai orted: node {node or '?'} is not a node of this job ({', '.join(names)}).", file=sys.stderr)
        return 255
    env, cwd = job_environment(bundle, names.index(node), wait=RECORD_WAIT)
    return run_in(env, cwd, ["orted", *args])


def connect(host: str, port: int) -> int:
    """Copy stdin to a TCP connection to host:port and the connection to stdout, until both sides
    are done: one forwarded connection, carried by the engine's way onto the node (srun)."""
    try:
        conn = socket.create_connection((host, port), timeout=10)
    except OSError as exc:
        print(f"batchai: cannot connect to {host}:{port} from this node: {exc.strerror or exc}", file=sys.stderr)
        return 1
    conn.settimeout(None)

    def upstream() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(0, 65536):
                conn.sendall(chunk)
            conn.shutdown(socket.SHUT_WR)

    threading.Thread(target=upstream, daemon=True).start()
    with contextlib.suppress(OSError):
        while chunk := conn.recv(65536):
            view = memoryview(chunk)
            while view:
                view = view[os.write(1, view) :]
    return 0


def main(verb: str, args: list[str]) -> int:
    if verb == "exec" and len(args) >= 4 and args[2] == "--":
        bundle = bundles.adopt(args[0])
        env, cwd = job_environment(bundle, int(args[1]))
        return run_in(env, cwd, args[3:])
    if verb == "exec-node" and len(args) >= 3 and args[1] == "--":
        env, cwd = node_environment(args[0])
        return run_in(env, cwd, args[2:])
    if verb == "rsh" and len(args) >= 2:
        return rsh(args[0], args[1], args[2:])
    if verb == "orted" and args:
        return orted(args[0], args[1:])
    if verb == "connect" and len(args) == 2:
        return connect(args[0], int(args[1]))
    print(f"usage: python -m batchai_cli.agent {verb} ... (see batchai_cli/agent/shell.py)", file=sys.stderr)
    return 2
