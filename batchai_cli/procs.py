"""Processes of batchai's own: detached starts, signals held until handlers are in place, and
telling a live process from a later one with the same pid. A leaf module: the engines, the agent
and the services all use it.
"""

from __future__ import annotations

import os
import signal
import sys

from batchai_cli.errors import EngineError


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read().decode()
    except OSError:
        return None
    return data[data.rindex(")") + 2 :].split()


def process_start(pid: int) -> int | None:
    """The start time of a process (clock ticks since boot), to tell it from a later one with its pid."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def process_alive(pid: int, start: int | None) -> bool:
    """True while the process `pid` that started at `start` is running (zombies count as ended)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return start is None or int(fields[19]) == start


# Signals our processes handle. They are blocked from fork until the new program has installed its
# handlers (ready_for_signals), so one sent during its start-up waits instead of killing it.
HANDLED_SIGNALS = {signal.SIGTERM, signal.SIGUSR1, signal.SIGINT}


def ready_for_signals() -> None:
    """Call after installing handlers for HANDLED_SIGNALS: lets the blocked ones through."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)


def blocked_signals():
    """A context in which child processes start with HANDLED_SIGNALS blocked (the mask is inherited)."""
    from contextlib import contextmanager

    @contextmanager
    def block():
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    return block()


def spawn_detached(argv: list[str], log_path: str, env: dict[str, str] | None = None) -> int:
    """Start `argv` in its own session, fully detached (its parent is init, so it is never left a
    zombie of the CLI), with stdout/stderr appended to log_path, and HANDLED_SIGNALS blocked until
    it calls ready_for_signals(). Returns its pid."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_end)
            signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
            os.setsid()
            grandchild = os.fork()
            if grandchild:
                os.write(write_end, str(grandchild).encode())
                os._exit(0)
            os.close(write_end)
            # Its own process group too, so killpg(pid) reaches it and everything it starts.
            os.setpgid(0, 0)
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.execve(argv[0], argv, os.environ if env is None else env)
        finally:
            os._exit(127)
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 64):
        data += chunk
    os.close(read_end)
    os.waitpid(child, 0)
    if not data:
        raise EngineError(f"Could not start {argv[0]}.")
    return int(data)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
