"""Owner-only files and folders: $BATCHAI_HOME and job bundles hold storage keys and secrets.

A leaf module (imports only the standard library), so the CLI, the services, the runner, the agent
and the engines can all use it. Files are owner-only from the moment they exist: they are created
under a umask of 077 (or with an explicit 0600 mode), never chmod-ed after, so there is no window
in which another local user can open them.

    with private.umask():            # anything created inside: folders 0700, files 0600
        sqlite3.connect(path)        # state.db (and SQLite gives -wal/-shm the database's mode)
    private.makedirs(folder)         # every folder it creates is 0700
    fd = private.open_file(path)     # O_CREAT with mode 0600
    private.write_whole(path, text)  # written whole, atomically (a reader sees the old or the new)

Processes that work on job bundles (the runner, the agents) call `enter()` first: their umask
becomes 077 and the user's own umask is kept in BATCHAI_JOB_UMASK for the job's processes
(`job_umask()`), so what the job itself writes keeps the user's usual modes.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

PRIVATE_UMASK = 0o077
FOLDER_MODE = 0o700
FILE_MODE = 0o600
# Where enter() keeps the umask the user ran batchai with, for the job's own processes.
JOB_UMASK_VARIABLE = "BATCHAI_JOB_UMASK"


@contextmanager
def umask() -> Iterator[None]:
    """Create files and folders owner-only inside this block (the umask is process-wide: keep the
    block short and around creation only)."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def makedirs(path: str) -> None:
    """os.makedirs(path, exist_ok=True) with every folder it creates 0700."""
    with umask():
        os.makedirs(path, mode=FOLDER_MODE, exist_ok=True)


def open_file(path: str, flags: int = os.O_WRONLY | os.O_CREAT | os.O_APPEND) -> int:
    """os.open with O_CREAT and mode 0600 (an existing file keeps its mode). Returns the descriptor."""
    return os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)


def write_whole(path: str, text: str, mode: int = FILE_MODE) -> None:
    """Write `path` whole, atomically: a temporary file of this process (owner-only, or `mode`)
    renamed over it, so a reader, on this node or another, never sees it half-written."""
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def enter() -> None:
    """Make this process's umask 077 for good, keeping the user's umask for the job (job_umask())."""
    previous = os.umask(PRIVATE_UMASK)
    os.environ.setdefault(JOB_UMASK_VARIABLE, f"{previous:03o}")


def job_umask() -> int:
    """The umask the user ran batchai with (set by enter()), for the processes of the job itself."""
    raw = os.environ.get(JOB_UMASK_VARIABLE, "")
    try:
        value = int(raw, 8)
    except ValueError:
        current = os.umask(0)
        os.umask(current)
        return current
    return value & 0o777


def looser_than_owner(path: str) -> int | None:
    """The permission bits of `path` when group or others have any access to it, else None."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    return mode if mode & 0o077 else None
