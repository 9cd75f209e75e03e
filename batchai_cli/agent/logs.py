"""Log shipping: what a job writes to stdout/stderr reaches storage while it runs, and none of it is lost.

Every byte first lands in a spool file on the node (so a slow or unreachable store never blocks
the job or drops data), then a shipper thread appends the new bytes to the file in storage at least
every `interval` seconds (append blobs on Blob, put-range on Files, a plain append on a folder).
Appends carry the offset they expect, so a retried append is never written twice. At the end,
close() ships what is left, retrying; what still cannot be shipped is reported, and stays in
the spool file for recovery.

The job's pipes are drained whatever happens to the spool. When the spool's disk is full, what is
already in storage is given back to the disk (holes punched in the spool files; offsets stay as
they were) and the shipper is woken to ship more, for up to FULL_WAIT_SECONDS. If the disk stays
full, the stream keeps nothing more (a gap would corrupt what follows) but goes on reading what the
job writes, so the job never blocks on a full pipe; the loss is counted, and a DiskFull error naming
the path is raised once to the agent (`on_disk_full`) and reported by close(). The shipper holds a
little room on the disk from the start (RESERVE_BYTES) and gives it back then, so that the node's
result and the job's end can still be written there.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable

from batchai_cli.models import batchai_error
from batchai_cli.storage.base import Store, join_path

CHUNK = 4 * 1024 * 1024  # the largest append Blob storage takes in one block
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How long a write may wait on a full disk for the shipper to ship, and so free, what the spool holds.
FULL_WAIT_SECONDS = 2.0
# Room the shipper holds on the spool's disk and gives back when that disk is full, so that the
# agent can still record its result, and the runner the job's end, on it.
RESERVE_BYTES = 256 * 1024


class Stream:
    """One log file: written locally by the agent, shipped to `key` in the store."""

    def __init__(
        self,
        name: str,
        key: str,
        spool_path: str,
        *,
        on_full: Callable[[], bool] | None = None,
        on_lost: Callable[[Stream], None] | None = None,
    ):
        self.name = name
        self.key = key
        self.spool_path = spool_path
        # Unbuffered, so `written` is exactly what the file holds even when a write fails half-way.
        self._file = open(spool_path, "ab", buffering=0)  # noqa: SIM115 - closed by LogShipper.close
        self._lock = threading.Lock()
        self._on_full = on_full  # asked for room when the disk is full; True: try again
        self._on_lost = on_lost  # told once, when the spool stops keeping the output
        self.written = 0
        self.shipped = 0
        self.created = False
        self.error: str | None = None
        self.lost = 0  # bytes the job wrote that the spool could not keep
        self.lost_error: OSError | None = None  # why, once that happened
        self._freed = 0  # the spool's first bytes given back to the disk (shipped already)

    def write(self, data: bytes) -> None:
        """Keep `data` in the spool. Never raises and never blocks for long: what the spool cannot
        take is counted in `lost`, and `lost_error` says why."""
        if not data:
            return
        with self._lock:
            kept_until_now = self.lost_error is None
            if kept_until_now:
                data = self._write_all(memoryview(data))
            self.lost += len(data)
        # Outside the lock: the agent may write this stream's own loss to execution.log.
        if kept_until_now and self.lost_error is not None and self._on_lost is not None:
            self._on_lost(self)

    def _write_all(self, view: memoryview) -> memoryview:
        """Write what the disk takes; the rest (empty when all went in) once the disk stayed full."""
        deadline = None
        while view:
            try:
                count = self._file.write(view)
            except OSError as exc:
                if exc.errno in FULL_ERRNOS:
                    deadline = deadline or time.monotonic() + FULL_WAIT_SECONDS
                    if time.monotonic() < deadline and self._on_full is not None and self._on_full():
                        continue
                self.lost_error = exc
                return view
            self.written += count or 0
            view = view[count or 0 :]
        return view

    def text(self, line: str) -> None:
        self.write(line.encode("utf-8", "replace"))

    def pending(self) -> int:
        return self.written - self.shipped

    def read_pending(self, limit: int) -> bytes:
        with open(self.spool_path, "rb") as handle:
            handle.seek(self.shipped)
            return handle.read(min(limit, self.written - self.shipped))

    def free_shipped(self) -> int:
        """Give the disk back the spool's blocks that are in storage already (a hole; the file's
        size and offsets stay). Returns the bytes freed, 0 where the file system cannot do it."""
        end = self.shipped - self.shipped % 4096
        if end <= self._freed:
            return 0
        try:
            freed = _punch_hole(self._file.fileno(), end)
        except (OSError, ValueError):  # closed meanwhile, or a file system without holes
            return 0
        if not freed:
            return 0
        self._freed, before = end, self._freed
        return end - before

    @property
    def disk_full(self) -> bool:
        return self.lost_error is not None and self.lost_error.errno in FULL_ERRNOS

    def loss(self, *, counted: bool = True) -> str | None:
        """What was lost and why, once the spool stopped keeping the job's output (with the count
        of bytes lost, or, while the job still writes, without); None before."""
        if self.lost_error is None:
            return None
        what = "is full" if self.disk_full else "cannot be written"
        lost = f"the {self.lost} bytes written after it are lost" if counted else "what is written after it is lost"
        return (
            f"The disk that holds {self.spool_path} {what} ({_describe(self.lost_error)}): {self.name} was kept "
            f"up to byte {self.written}; {lost}. Free space on that disk (or set BATCHAI_HOME to a larger "
            "one) and run the job again."
        )

    def close_local(self) -> None:
        with self._lock:
            self._file.close()


class LogShipper:
    """Ships the streams of one job node to `directory` in `store`.

    `on_disk_full(problem)` is called once, from the thread that drains the job's output, with a
    DiskFull error (batchai_error shape) when a spool stops keeping that output; the agent ends the
    job with it. `disk_full` holds the same error afterwards."""

    def __init__(
        self,
        store: Store,
        directory: str,
        spool_dir: str,
        *,
        interval: float = 0.25,
        on_disk_full: Callable[[dict], None] | None = None,
    ):
        self.store = store
        self.directory = directory
        self.spool_dir = spool_dir
        self.interval = interval
        self.on_disk_full = on_disk_full
        self.disk_full: dict | None = None
        self.streams: dict[str, Stream] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        os.makedirs(spool_dir, exist_ok=True)
        self._reserve = os.path.join(spool_dir, ".reserve")
        _hold(self._reserve, RESERVE_BYTES)

    def open(self, name: str) -> Stream:
        """The stream for a file of the stdouterr folder (created in storage even if it stays empty)."""
        with self._lock:
            if name not in self.streams:
                self.streams[name] = Stream(
                    name,
                    join_path(self.directory, name),
                    os.path.join(self.spool_dir, name),
                    on_full=self.make_room,
                    on_lost=self.lost,
                )
            return self.streams[name]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.ship_once()
            self._wake.wait(self.interval)
            self._wake.clear()

    def ship_once(self) -> bool:
        """Ship what each stream has; True when everything written so far is in storage."""
        with self._lock:
            streams = list(self.streams.values())
        done = True
        for stream in streams:
            try:
                self._ship(stream)
                stream.error = None
            except Exception as exc:  # keep shipping the others; retried on the next round
                stream.error = _describe(exc)
                done = False
        return done

    def _ship(self, stream: Stream) -> None:
        if not stream.created and stream.written == 0:
            stream.shipped = self.store.append(stream.key, b"", 0)
            stream.created = True
        while stream.pending() > 0:
            data = stream.read_pending(CHUNK)
            stream.shipped = self.store.append(stream.key, data, stream.shipped)
            stream.created = True

    def make_room(self) -> bool:
        """A spool write found the disk full: give back what is shipped already, and have the
        shipper ship more. True when a retry may succeed (room was made, or shipping may make it)."""
        with self._lock:
            streams = list(self.streams.values())
        if sum(stream.free_shipped() for stream in streams):
            return True
        if self._thread is None or not self._thread.is_alive() or not any(s.pending() for s in streams):
            return False
        self._wake.set()
        time.sleep(0.05)
        return True

    def lost(self, stream: Stream) -> None:
        """A stream stopped keeping the job's output: tell the agent, once."""
        if self.disk_full is not None:
            return
        code = "DiskFull" if stream.disk_full else "LogSpoolFailed"
        self.release_reserve()
        self.disk_full = batchai_error(code, stream.loss(counted=False) or "", path=stream.spool_path)
        if self.on_disk_full is not None:
            with contextlib.suppress(Exception):  # the drain goes on whatever the agent does with it
                self.on_disk_full(self.disk_full)

    def release_reserve(self) -> None:
        """Give the room held on the spool's disk back (once the disk is full, and at the end)."""
        with contextlib.suppress(OSError):
            os.unlink(self._reserve)

    def close(self, *, retry_seconds: float | None = None) -> list[str]:
        """Stop the thread and ship the rest, retrying with backoff for up to `retry_seconds`
        (default: $BATCHAI_LOG_RETRY_SECONDS, else 20). Returns one message per stream that could
        not be shipped whole, or whose spool lost part of it (empty when all is in storage)."""
        if retry_seconds is None:
            retry_seconds = float(os.environ.get("BATCHAI_LOG_RETRY_SECONDS", "20"))
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + retry_seconds
        delay = 0.2
        while not self.ship_once() and time.monotonic() < deadline:
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 5.0)
        self.release_reserve()
        problems = []
        for stream in self.streams.values():
            stream.close_local()
            if stream.pending() or stream.error:
                problems.append(
                    f"{stream.name}: {stream.pending()} of {stream.written} bytes could not be written to "
                    f"{self.store.url(stream.key)} ({stream.error or 'unknown error'}); they are kept in "
                    f"{stream.spool_path}."
                )
            if loss := stream.loss():
                problems.append(f"{stream.name}: {loss}")
        return problems


def _hold(path: str, size: int) -> None:
    """Take `size` bytes of the disk in a file of their own (really allocated, not a sparse file);
    nothing when the disk has no such room already."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
    finally:
        os.close(fd)


def _punch_hole(fd: int, length: int) -> bool:
    """fallocate(PUNCH_HOLE | KEEP_SIZE) over the first `length` bytes; False where unsupported."""
    libc = _libc()
    fallocate = getattr(libc, "fallocate", None)
    if fallocate is None:
        return False
    import ctypes

    fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    punch_hole, keep_size = 0x02, 0x01
    return fallocate(fd, punch_hole | keep_size, 0, length) == 0


def _libc():
    import ctypes  # here: a node's agent starts faster without it

    try:
        return ctypes.CDLL(None, use_errno=True)  # the C library the interpreter runs on
    except OSError:
        return None


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
