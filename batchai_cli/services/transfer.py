"""Batch transfers between a local folder and a Store: what `storage blob|file upload-batch` and
`download-batch` do, as library functions returning a summary dict.

Speed comes from three choices, each measured (bench/bench_upload.py prints the ratios):
- many files at once: `max_connections` worker threads, each with its own keep-alive connection,
  pull files from one shared list (no future per file, so 100 000 files cost little memory);
- small files in one request each through the backends' own REST client (about 0.6 ms of client
  CPU per file, against 3.7 ms through the SDK's pipeline);
- large files one after another, each in parallel blocks of the store's block_size with at most
  max_connections + 2 blocks in memory, so a 5 GB file never sits in RAM.

`skip_unchanged` lists the destination once (Blob: one request per 5000 blobs) and skips every
file whose size and Content-MD5 match; it implies overwriting the files that changed. Uploads are
atomic per file (Blob: one Put Blob or one Put Block List commit; Files: the MD5 is set last), so
an upload killed half-way and run again with skip_unchanged finishes the job and leaves no file
torn. Nothing is reported uploaded that was not: a file is in the result only after the service
acknowledged it, and any failure makes the call raise StorageError listing the failed files,
after the reporter has been given the summary.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import mimetypes
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from batchai_cli import log
from batchai_cli.errors import AlreadyExists, BatchAIError, NotFound, StorageError, UsageError
from batchai_cli.storage._rest import AccessDenied
from batchai_cli.storage.base import Entry, Store, clean_path, file_md5, join_path

DEFAULT_CONNECTIONS = 32
"""Files in flight at once. az sends one file at a time (with 2 connections for a large file's
blocks), which is what makes it slow far from the region: there each small file costs a round trip."""

DEFAULT_BLOCK_CONNECTIONS = 16
"""Blocks of one large file in flight at once by default: memory stays near (16 + 2) x block_size."""

MAX_LISTED_FAILURES = 20
# How many times a file that changes while it is uploaded is sent again before it fails.
CHANGE_RETRIES = 2


class Reporter(Protocol):
    """Where a transfer reports progress; the CLI draws a rich bar on a TTY. Called from many threads."""

    def start(self, files: int, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def file_done(self, path: str) -> None: ...

    def finish(self, summary: dict[str, Any]) -> None: ...


class NullReporter:
    def start(self, files: int, total_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self, path: str) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> None:
        pass


@dataclass
class _Item:
    """One file to transfer: its path in the store, its local path, and its size."""

    store_path: str
    local_path: Path
    size: int
    remote: Entry | None = None


@dataclass
class _Outcome:
    """What happened to the files of one transfer, filled in from many threads under `lock`."""

    done: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    abort: threading.Event = field(default_factory=threading.Event)
    abort_reason: str = ""

    def add_done(self, record: dict[str, Any], size: int) -> None:
        with self.lock:
            self.done.append(record)
            self.bytes += size

    def add_skipped(self, path: str, reason: str) -> None:
        with self.lock:
            self.skipped.append({"path": path, "reason": reason})

    def add_failed(self, path: str, error: BaseException | str) -> None:
        message = error if isinstance(error, str) else _error_text(error)
        with self.lock:
            self.failed.append({"path": path, "error": message})
        if _is_fatal(error):
            # Every later request would fail the same way; stop instead of retrying each file.
            with self.lock:
                if not self.abort.is_set():
                    self.abort_reason = message
                    self.abort.set()


def _is_fatal(error: BaseException | str) -> bool:
    from batchai_cli.storage._rest import TransportError

    return isinstance(error, TransportError | AccessDenied)


def _error_text(error: BaseException) -> str:
    if isinstance(error, BatchAIError):
        return str(error)
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return str(error) or type(error).__name__


def guess_content_type(path: str | os.PathLike[str], content_type: str | None = None) -> str:
    """az's rule: the given type, else the one the file name suggests, else application/octet-stream."""
    return content_type or mimetypes.guess_type(str(path))[0] or "application/octet-stream"


# -- upload --------------------------------------------------------------------------------------


def upload_batch(
    store: Store,
    source: str | os.PathLike[str],
    *,
    destination_path: str = "",
    pattern: str | None = None,
    dryrun: bool = False,
    overwrite: bool = False,
    skip_unchanged: bool = False,
    max_connections: int | None = None,
    content_type: str | None = None,
    create_destination: bool = False,
    follow_symlinks: bool = False,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Upload the files of a local folder (recursively) under `destination_path` of `store`.

    Only regular files go up: FIFOs, sockets and devices are skipped with a warning (reading a
    FIFO would wait for ever). Symbolic links are followed while they stay inside `source`; those
    that lead out of it are skipped with a warning unless `follow_symlinks` (which also follows
    links to folders). A file that changes while it is sent (size, mtime or ctime differ before and
    after) is sent again, up to CHANGE_RETRIES times, then failed by name and its torn copy removed.

    `pattern` is az's: an fnmatch pattern matched against each file's path relative to
    `source` ('*' crosses '/'). Without `overwrite` (or `skip_unchanged`) files that already
    exist are skipped with a warning, as az refuses them.

    Returns {"files", "bytes", "skipped", "failed", "seconds", "uploaded": [records],
    "skipped_files": [...], "failed_files": [...], "dryrun"}; each record has path, url, size,
    content_type, last_modified, etag. Raises UsageError for a missing source or a bad
    max_connections, NotFound when the container/share does not exist (unless
    create_destination), StorageError when any file failed (after reporter.finish).
    """
    reporter = reporter or NullReporter()
    started = time.monotonic()
    file_connections, block_connections = _connections(max_connections)
    source_dir = Path(source)
    if not source_dir.is_dir():
        what = "is not a folder" if source_dir.exists() else "does not exist"
        raise UsageError(f"The source '{source}' {what}.", hint="--source/-s takes a local folder.")
    try:
        destination_path = clean_path(destination_path)
    except ValueError:
        raise UsageError(
            f"'..' is not allowed in --destination-path: {destination_path!r}.",
            hint="Give a path inside the container or share.",
        ) from None
    outcome = _Outcome()
    passed_over: list[tuple[str, str]] = []
    items = [
        _Item(join_path(destination_path, relative), local, size)
        for relative, local, size in local_files(
            source_dir, pattern, follow_symlinks=follow_symlinks, passed_over=passed_over
        )
    ]
    for relative, reason in passed_over:
        outcome.add_skipped(join_path(destination_path, relative), reason)

    def warn_passed_over() -> None:
        # Once the destination is known to work: a command that fails says only why.
        for relative, reason in passed_over:
            log.warning("Skipped '%s': %s.", relative, reason)

    if not items:
        warn_passed_over()
        if pattern:
            log.warning("No file under '%s' matches the pattern '%s'; nothing to upload.", source, pattern)
        else:
            log.warning("The folder '%s' holds no files; nothing to upload.", source)
        return _finish(reporter, outcome, started, dryrun=dryrun)
    if dryrun:
        warn_passed_over()
        for item in items:
            record = _record(store, item.store_path, item.size, guess_content_type(item.local_path, content_type))
            outcome.add_done(record, item.size)
        return _finish(reporter, outcome, started, dryrun=True)

    # One round trip before the first upload: the listing, when there is one, proves the root exists.
    remote: dict[str, Entry] = {}
    if skip_unchanged or not overwrite:
        try:
            remote = {entry.path: entry for entry in store.walk(destination_path, missing_ok=True)}
        except FileNotFoundError as exc:
            _root_missing(store, create_destination, exc)
        except AccessDenied:
            if skip_unchanged:
                raise
            # A SAS without list permission: existing files are refused one by one instead.
            _ensure_root(store, create_destination)
    else:
        _ensure_root(store, create_destination)
    to_send = []
    for item in items:
        item.remote = remote.get(item.store_path)
        if item.remote is not None and not (overwrite or skip_unchanged):
            outcome.add_skipped(item.store_path, "exists")
            continue
        to_send.append(item)
    warn_passed_over()
    existing = sum(1 for skipped in outcome.skipped if skipped["reason"] == "exists")
    if existing:
        log.warning(
            "%d file(s) already exist and were not uploaded; use --overwrite or --skip-unchanged.",
            existing,
        )

    reporter.start(len(to_send), sum(item.size for item in to_send))
    small_limit = getattr(store, "single_put_max", store.block_size)
    small = [item for item in to_send if item.size <= small_limit]
    large = [item for item in to_send if item.size > small_limit]
    replace = overwrite or skip_unchanged

    def send(item: _Item, concurrency: int) -> None:
        try:
            for attempt in range(CHANGE_RETRIES + 1):
                before = _signature(item.local_path)
                sent = send_once(item, concurrency, replace or attempt > 0)
                if sent is None or _signature(item.local_path) == before:
                    break
                item.size = item.local_path.stat().st_size
            else:
                with contextlib.suppress(OSError, BatchAIError):
                    store.delete(item.store_path)
                outcome.add_failed(
                    item.store_path,
                    f"the file changed while it was uploaded ({CHANGE_RETRIES + 1} tries: size, modification "
                    f"or change time differ before and after); not uploaded: {item.local_path}",
                )
                return
            if sent is not None:
                entry, ctype = sent
                outcome.add_done(_record(store, item.store_path, entry.size, ctype, entry), entry.size)
        except FileExistsError:
            outcome.add_skipped(item.store_path, "exists")
        except (OSError, BatchAIError, ValueError) as exc:
            outcome.add_failed(item.store_path, exc)
        finally:
            reporter.file_done(item.store_path)

    def send_once(item: _Item, concurrency: int, replace: bool) -> tuple[Entry, str] | None:
        """One upload of the file: (entry, content type), or None when it was skipped as unchanged."""
        if item.size <= small_limit:
            data = item.local_path.read_bytes()
            md5 = hashlib.md5(data).digest()
            if skip_unchanged and _unchanged(store, item, len(data), lambda: md5):
                outcome.add_skipped(item.store_path, "unchanged")
                reporter.advance(item.size)
                return None
            ctype = guess_content_type(item.local_path, content_type)
            entry = store.write(item.store_path, data, content_type=ctype, content_md5=md5, overwrite=replace)
            reporter.advance(len(data))
        else:
            if skip_unchanged and _unchanged(store, item, item.size, lambda: file_md5(item.local_path)):
                outcome.add_skipped(item.store_path, "unchanged")
                reporter.advance(item.size)
                return None
            ctype = guess_content_type(item.local_path, content_type)
            entry = store.upload_file(
                item.store_path,
                item.local_path,
                content_type=ctype,
                max_concurrency=concurrency,
                progress=reporter.advance,
            )
        return entry, ctype

    run_workers(small, lambda item: send(item, 1), file_connections, outcome)
    run_workers(large, lambda item: send(item, block_connections), 1, outcome)
    return _finish(reporter, outcome, started, dryrun=False, verb="upload")


def _connections(max_connections: int | None) -> tuple[int, int]:
    """(files at once, blocks of one large file at once): both max_connections when given."""
    if max_connections is None:
        return DEFAULT_CONNECTIONS, DEFAULT_BLOCK_CONNECTIONS
    if max_connections < 1:
        raise UsageError("--max-connections must be at least 1.")
    return max_connections, max_connections


def local_files(
    source: Path,
    pattern: str | None,
    *,
    follow_symlinks: bool = False,
    passed_over: list[tuple[str, str]] | None = None,
) -> Iterable[tuple[str, Path, int]]:
    """(path relative to source with '/', local path, size) of every regular file below `source`, sorted.

    Symbolic links are followed while they stay inside `source` (to files; to folders only with
    follow_symlinks, each real folder once, so a cycle ends); with follow_symlinks, wherever they
    lead. What is passed over goes to `passed_over` as (relative path, reason): FIFOs, sockets,
    devices, and links that leave the source.
    """
    pattern = pattern.lstrip("/") if pattern else None
    passed_over = [] if passed_over is None else passed_over
    root = os.path.realpath(source)
    seen_folders = {root}

    def inside(path: str) -> bool:
        real = os.path.realpath(path)
        return real == root or real.startswith(root.rstrip("/") + "/")

    for folder, dir_names, file_names in os.walk(source, followlinks=follow_symlinks):
        relative_folder = os.path.relpath(folder, source)
        kept = []
        for name in sorted(dir_names):
            path = os.path.join(folder, name)
            if os.path.islink(path):
                relative = name if relative_folder == "." else f"{relative_folder}/{name}".replace(os.sep, "/")
                if not follow_symlinks:
                    if not inside(path):
                        passed_over.append((relative, "a link that leads out of the source (use --follow-symlinks)"))
                    continue
                real = os.path.realpath(path)
                if real in seen_folders:
                    continue
                seen_folders.add(real)
            kept.append(name)
        dir_names[:] = kept
        for name in sorted(file_names):
            relative = name if relative_folder == "." else f"{relative_folder}/{name}".replace(os.sep, "/")
            if pattern and not fnmatch.fnmatch(relative, pattern):
                continue
            local = Path(folder, name)
            if not follow_symlinks and local.is_symlink() and not inside(str(local)):
                passed_over.append((relative, "a link that leads out of the source (use --follow-symlinks)"))
                continue
            try:
                info = local.stat()
            except OSError:
                yield relative, local, 0  # a dangling link: the upload reports the error for this file
                continue
            if not stat.S_ISREG(info.st_mode):
                passed_over.append((relative, f"not a regular file ({_file_kind(info.st_mode)})"))
                continue
            yield relative, local, info.st_size


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file"


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    """What tells a file's content changed: size, mtime, ctime (and inode, for a replaced file)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino


def _ensure_root(store: Store, create: bool) -> None:
    try:
        store.stat("")
    except FileNotFoundError as exc:
        _root_missing(store, create, exc)


def _root_missing(store: Store, create: bool, exc: FileNotFoundError) -> None:
    """Create the missing container/share/folder, or raise NotFound saying how to."""
    if create:
        store.create_root()
        return
    if store.scheme == "file":
        raise NotFound(str(exc)) from None
    kind = "container" if store.scheme == "azureblob" else "share"
    name = getattr(store, kind, "")
    raise NotFound(
        str(exc),
        hint=f"Create it with `batchai storage {kind} create -n {name}`, or add --create-{kind}.",
    ) from None


def _unchanged(store: Store, item: _Item, size: int, local_md5: Callable[[], bytes]) -> bool:
    remote = item.remote
    if remote is None or remote.size != size:
        return False
    remote_md5 = remote.content_md5
    if remote_md5 is None and store.stores_md5:
        remote_md5 = store.stat(item.store_path).content_md5  # Files lists no MD5; stat has it
    return remote_md5 is not None and remote_md5 == local_md5()


def _record(store: Store, path: str, size: int, content_type: str, entry: Entry | None = None) -> dict[str, Any]:
    return {
        "path": path,
        "url": store.url(path),
        "size": size,
        "content_type": content_type,
        "last_modified": entry.last_modified.isoformat() if entry and entry.last_modified else None,
        "etag": entry.etag if entry else None,
    }


def run_workers(items: Sequence[_Item], work: Callable[[_Item], None], workers: int, outcome: _Outcome) -> None:
    """work(item) for every item on up to `workers` threads pulling from one shared list.

    Once `outcome.abort` is set (the service is unreachable, or refuses our credentials), the
    items not yet started are recorded as failed without a request each.
    """
    if not items:
        return
    position = iter(range(len(items)))
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            item = items[index]
            if outcome.abort.is_set():
                outcome.add_failed(item.store_path, f"not attempted: {outcome.abort_reason}")
                continue
            work(item)

    if workers <= 1 or len(items) == 1:
        loop()
        return
    threads = [threading.Thread(target=loop, daemon=True) for _ in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        outcome.abort_reason = "interrupted"
        outcome.abort.set()
        raise


def _finish(
    reporter: Reporter, outcome: _Outcome, started: float, *, dryrun: bool, verb: str = "upload"
) -> dict[str, Any]:
    outcome.done.sort(key=lambda record: record["path"])
    outcome.failed.sort(key=lambda record: record["path"])
    summary = {
        "files": len(outcome.done),
        "bytes": outcome.bytes,
        "skipped": len(outcome.skipped),
        "failed": len(outcome.failed),
        "seconds": round(time.monotonic() - started, 3),
        "dryrun": dryrun,
        f"{verb}ed": outcome.done,
        "skipped_files": outcome.skipped,
        "failed_files": outcome.failed,
    }
    reporter.finish(summary)
    if outcome.failed:
        total = len(outcome.done) + len(outcome.failed)
        lines = [f"  {failure['path']}: {failure['error']}" for failure in outcome.failed[:MAX_LISTED_FAILURES]]
        if len(outcome.failed) > MAX_LISTED_FAILURES:
            lines.append(f"  ... and {len(outcome.failed) - MAX_LISTED_FAILURES} more")
        # The advice goes first: the list after it may be long, and is the last thing on screen.
        raise StorageError(
            f"{len(outcome.failed)} of {total} files failed to {verb} (run the same command again with "
            "--skip-unchanged to finish the job):\n" + "\n".join(lines)
        )
    return summary


# -- download ------------------------------------------------------------------------------------


def download_batch(
    store: Store,
    destination: str | os.PathLike[str],
    *,
    source_path: str = "",
    pattern: str | None = None,
    dryrun: bool = False,
    overwrite: bool = True,
    skip_unchanged: bool = False,
    max_connections: int | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Download every file below `source_path` of `store` into the local folder `destination`.

    `pattern` is matched (fnmatch) against each file's path relative to `source_path`. Local
    files are written through a temporary name and renamed, so none is ever half-written.
    Without `overwrite`, existing local files are an error (raised before anything is
    downloaded); `skip_unchanged` skips local files whose size and MD5 match the stored MD5.
    Returns the summary of upload_batch with "downloaded" records. Raises NotFound when the
    source does not exist, StorageError when any file failed (after reporter.finish).
    """
    reporter = reporter or NullReporter()
    started = time.monotonic()
    file_connections, block_connections = _connections(max_connections)
    source_path = clean_path(source_path)
    target_root = Path(destination)
    if target_root.exists() and not target_root.is_dir():
        raise UsageError(f"The destination '{destination}' is not a folder.")
    try:
        entries = list(store.walk(source_path))
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise NotFound(str(exc)) from None
    pattern = pattern.lstrip("/") if pattern else None
    items = []
    for entry in entries:
        relative = entry.path[len(source_path) + 1 :] if source_path else entry.path
        if pattern and not fnmatch.fnmatch(relative, pattern):
            continue
        local = target_root.joinpath(*relative.split("/"))
        items.append(_Item(entry.path, local, entry.size, remote=entry))
    outcome = _Outcome()
    if not items:
        log.warning("No files to download from %s.", store.url(source_path))
    if dryrun or not items:
        for item in items:
            assert item.remote is not None
            outcome.add_done(
                _record(store, item.store_path, item.size, item.remote.content_type or "", item.remote), item.size
            )
        return _finish(reporter, outcome, started, dryrun=dryrun, verb="download")
    if not overwrite and not skip_unchanged:
        existing = [str(item.local_path) for item in items if item.local_path.exists()]
        if existing:
            shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
            raise StorageError(f"Local files already exist: {shown}.", hint="Add --overwrite to replace them.")

    reporter.start(len(items), sum(item.size for item in items))
    small_limit = store.block_size

    def fetch(item: _Item, concurrency: int) -> None:
        try:
            remote = item.remote
            assert remote is not None
            if skip_unchanged and _local_unchanged(store, item):
                outcome.add_skipped(item.store_path, "unchanged")
                reporter.advance(item.size)
                return
            if item.size <= small_limit:
                data = store.read(item.store_path)
                if remote.content_md5 is not None and hashlib.md5(data).digest() != remote.content_md5:
                    raise StorageError(f"The download of '{item.store_path}' does not match its Content-MD5.")
                _write_atomically(item.local_path, data)
                reporter.advance(len(data))
            else:
                store.download_file(
                    item.store_path, item.local_path, max_concurrency=concurrency, progress=reporter.advance
                )
            outcome.add_done(_record(store, item.store_path, item.size, remote.content_type or "", remote), item.size)
        except (OSError, BatchAIError, ValueError) as exc:
            outcome.add_failed(item.store_path, exc)
        finally:
            reporter.file_done(item.store_path)

    small = [item for item in items if item.size <= small_limit]
    large = [item for item in items if item.size > small_limit]
    run_workers(small, lambda item: fetch(item, 1), file_connections, outcome)
    run_workers(large, lambda item: fetch(item, block_connections), 1, outcome)
    return _finish(reporter, outcome, started, dryrun=False, verb="download")


def _local_unchanged(store: Store, item: _Item) -> bool:
    """Same size and MD5; where the source keeps no MD5 (a local folder, an append blob), same size
    and the same bytes, compared range by range (a same-size edit with a newer mtime was kept)."""
    remote = item.remote
    try:
        local = item.local_path.stat()
        if remote is None or local.st_size != remote.size:
            return False
        remote_md5 = remote.content_md5
        if remote_md5 is None and store.stores_md5:
            remote_md5 = store.stat(item.store_path).content_md5  # Files lists no MD5; stat has it
        if remote_md5 is not None:
            return file_md5(item.local_path) == remote_md5
        return _same_bytes(store, item.store_path, item.local_path, local.st_size)
    except (OSError, BatchAIError):
        return False


def _same_bytes(store: Store, path: str, local_path: Path, size: int) -> bool:
    """Whether the source file holds exactly the local file's `size` bytes (stops at the first difference)."""
    step = max(1 << 20, int(getattr(store, "block_size", 0) or 0))
    with open(local_path, "rb") as handle:
        for offset in range(0, size, step):
            length = min(step, size - offset)
            if store.read_range(path, offset, length) != handle.read(length):
                return False
    return True


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- containers and shares -----------------------------------------------------------------------


def create_container(store: Store, *, fail_on_exist: bool = False) -> dict[str, bool]:
    """Create the store's container, share or folder: {"created": bool}, as az prints it.

    AlreadyExists when it exists and fail_on_exist is set; otherwise an existing one is fine.
    """
    created = store.create_root()
    if not created and fail_on_exist:
        raise AlreadyExists(f"{store.url()} already exists.")
    return {"created": created}
