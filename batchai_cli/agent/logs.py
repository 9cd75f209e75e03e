"""Log shipping: what a job writes to stdout/stderr reaches storage while it runs, and none of it is lost.

Every byte first lands in a spool file on the node (so a slow or unreachable store never blocks
the job or drops data), then a shipper thread appends the new bytes to the file in storage at least
every `interval` seconds (append blobs on Blob, put-range on Files, a plain append on a folder).
Appends carry the offset they expect, so a retried append is never written twice. At the end,
close() ships what is left, retrying; what still cannot be shipped is reported, and stays in
the spool file for recovery.
"""

from __future__ import annotations

import os
import threading
import time

from batchai_cli.storage.base import Store, join_path

CHUNK = 4 * 1024 * 1024  # the largest append Blob storage takes in one block


class Stream:
    """One log file: written locally by the agent, shipped to `key` in the store."""

    def __init__(self, name: str, key: str, spool_path: str):
        self.name = name
        self.key = key
        self.spool_path = spool_path
        self._file = open(spool_path, "ab")  # noqa: SIM115 - closed by LogShipper.close
        self._lock = threading.Lock()
        self.written = 0
        self.shipped = 0
        self.created = False
        self.error: str | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        with self._lock:
            self._file.write(data)
            self._file.flush()
            self.written += len(data)

    def text(self, line: str) -> None:
        self.write(line.encode("utf-8", "replace"))

    def pending(self) -> int:
        return self.written - self.shipped

    def read_pending(self, limit: int) -> bytes:
        with open(self.spool_path, "rb") as handle:
            handle.seek(self.shipped)
            return handle.read(min(limit, self.written - self.shipped))

    def close_local(self) -> None:
        with self._lock:
            self._file.close()


class LogShipper:
    """Ships the streams of one job node to `directory` in `store`."""

    def __init__(
        self,
        store: Store,
        directory: str,
        spool_dir: str,
        *,
        interval: float = 0.25,
    ):
        self.store = store
        self.directory = directory
        self.spool_dir = spool_dir
        self.interval = interval
        self.streams: dict[str, Stream] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        os.makedirs(spool_dir, exist_ok=True)

    def open(self, name: str) -> Stream:
        """The stream for a file of the stdouterr folder (created in storage even if it stays empty)."""
        with self._lock:
            if name not in self.streams:
                self.streams[name] = Stream(name, join_path(self.directory, name), os.path.join(self.spool_dir, name))
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

    def close(self, *, retry_seconds: float | None = None) -> list[str]:
        """Stop the thread and ship the rest, retrying with backoff for up to `retry_seconds`
        (default: $BATCHAI_LOG_RETRY_SECONDS, else 20). Returns one message per stream that could
        not be shipped whole (empty when all is in storage)."""
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
        problems = []
        for stream in self.streams.values():
            stream.close_local()
            if stream.pending() or stream.error:
                problems.append(
                    f"{stream.name}: {stream.pending()} of {stream.written} bytes could not be written to "
                    f"{self.store.url(stream.key)} ({stream.error or 'unknown error'}); they are kept in "
                    f"{stream.spool_path}."
                )
        return problems


def _describe(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
