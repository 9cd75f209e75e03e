"""A job's files while it runs and after: list them with download URLs, follow one as it grows,
download an output directory; and list a cluster's setup-task output.

Nothing here asks a node: a job path ($AZ_BATCHAI_JOB_MOUNT_ROOT/afs/logs, a local folder...)
is resolved to its Store (storage/paths.py) and read directly, as the Batch AI service did, so
the same code serves a local folder, Azure Blob and Azure Files.

`FileStream` replaces az's `tail_file`, which polled once a second with a SAS URL that expired
after an hour, decoded each chunk on its own (splitting multi-byte characters) and could stop
before the last bytes: here reads are ranged from the last offset through the Store, decoding
is incremental, and once the job has ended the file is read to its end before stopping.
"""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from batchai_cli import ids, log
from batchai_cli.errors import BatchAIError, NotFound, StorageError, UsageError
from batchai_cli.ids import ResourceId
from batchai_cli.services import Session
from batchai_cli.storage.base import Store, clean_path, join_path

STDOUTERR = "stdouterr"
IDLE_GRACE = 5.0  # seconds without new bytes before `job file stream` polls less often
TERMINAL = ("succeeded", "failed")
READ_CHUNK = 4 * 1024 * 1024
TAIL_BLOCK = 64 * 1024
SETUP_UNSUPPORTED = (
    "List files is supported only for clusters with startup task configure to store its output on Azure File "
    "Share or Azure Blob Container"
)


@dataclass(frozen=True)
class Directory:
    """One of a job's output directories (or its stdouterr folder), opened: a Store and a key."""

    store: Store
    key: str


def _relative(path: str | None, what: str) -> str:
    from urllib.parse import unquote

    try:
        # Percent-encoded too: Blob storage decodes %2e%2e to '..' (which then failed as rejected
        # credentials, the signature being over the other name).
        clean_path(unquote(path or ""))
        return clean_path(path or "")
    except ValueError:
        raise UsageError(
            f"'..' is not allowed in {what}: {path!r}.", hint="Give a path inside the directory."
        ) from None


def locate(session: Session, rid: ResourceId, *, output_directory_id: str = STDOUTERR, path: str = ".") -> Directory:
    """The directory `path` within the job's stdouterr folder or output directory `output_directory_id`.

    NotFound for a job that does not exist or an unknown id (naming the known ones); UsageError
    for a path with '..'.
    """
    from batchai_cli.services.jobs import get_job
    from batchai_cli.storage import paths

    body = get_job(session, rid)
    sub_path = _relative(path, "--path")
    properties = session.state.get_private(rid).get("properties") or {}
    cluster_id = (properties.get("cluster") or {}).get("id")
    cluster = session.state.get_private(ids.parse(cluster_id, expect="cluster")).get("properties") if cluster_id else {}
    segment = body["jobOutputDirectoryPathSegment"]
    if output_directory_id == STDOUTERR:
        prefix, folder = properties.get("stdOutErrPathPrefix"), join_path(segment, STDOUTERR)
    else:
        outputs = properties.get("outputDirectories") or []
        match = next((o for o in outputs if o.get("id") == output_directory_id), None)
        if match is None:
            known = ", ".join([STDOUTERR, *(o["id"] for o in outputs)])
            raise NotFound(
                f'The job "{rid.name}" has no output directory with id "{output_directory_id}". Known ids: {known}.'
            )
        prefix = match["pathPrefix"]
        folder = join_path(segment, "outputs", _relative(match.get("pathSuffix"), "pathSuffix"))
    if not prefix:
        raise BatchAIError(f'The job "{rid.name}" has no stdOutErrPathPrefix, so it has no stdouterr folder.')
    store, key = paths.resolve(prefix, paths.job_volumes(properties, cluster))
    return Directory(store, join_path(key, folder, sub_path))


def _iso(moment: datetime | None) -> str | None:
    # Whole seconds, as the service printed them, whatever precision the backend keeps.
    return moment.replace(microsecond=0).isoformat() if moment else None


def iter_files(directory: Directory, *, expiry_minutes: int = 60, missing_ok: bool = True) -> Iterator[dict]:
    """az's file items for one directory level, page by page as the Store lists them.

    A directory that does not exist (yet) gives nothing when missing_ok, else NotFound.
    """
    store, key = directory.store, directory.key
    try:
        for entry in store.list_dir(key):
            if entry.is_dir:
                yield {
                    "name": entry.name,
                    "fileType": "directory",
                    "downloadUrl": None,
                    "lastModified": None,
                    "contentLength": None,
                }
            else:
                yield {
                    "name": entry.name,
                    "fileType": "file",
                    "downloadUrl": store.download_url(entry.path, expiry_minutes=expiry_minutes),
                    "lastModified": _iso(entry.last_modified),
                    "contentLength": entry.size,
                }
    except FileNotFoundError:
        if not missing_ok:
            raise NotFound(f"No such directory: {store.url(key)}") from None
    except NotADirectoryError:
        raise UsageError(f"Not a directory: {store.url(key)}", hint="Give a directory with --path.") from None


def list_files(
    session: Session,
    rid: ResourceId,
    *,
    output_directory_id: str = STDOUTERR,
    path: str = ".",
    expiry_minutes: int = 60,
) -> list[dict]:
    """`job file list`: the files and directories at `path` of an output directory, sorted by name."""
    directory = locate(session, rid, output_directory_id=output_directory_id, path=path)
    items = iter_files(directory, expiry_minutes=expiry_minutes, missing_ok=_relative(path, "--path") == "")
    return sorted(items, key=lambda item: item["name"])


def download_files(
    session: Session,
    rid: ResourceId,
    destination: str,
    *,
    output_directory_id: str = STDOUTERR,
    path: str = ".",
    max_connections: int = 16,
    reporter: Any = None,
) -> dict:
    """`job file download`: every file below `path` of an output directory into `destination`, many
    at once, skipping local files that are already the same. Returns transfer's summary."""
    from batchai_cli.services import transfer

    directory = locate(session, rid, output_directory_id=output_directory_id, path=path)
    summary = transfer.download_batch(
        directory.store,
        destination,
        source_path=directory.key,
        skip_unchanged=True,
        max_connections=max_connections,
        reporter=reporter,
    )
    # Paths relative to the output directory, as they land under `destination`.
    cut = len(directory.key) + 1 if directory.key else 0
    for key in ("downloaded", "skipped_files", "failed_files"):
        for record in summary[key]:
            record["path"] = record["path"][cut:]
    return summary


# -- cluster setup task output -----------------------------------------------------------------


def list_cluster_files(session: Session, rid: ResourceId, *, path: str = ".", expiry_minutes: int = 60) -> list[dict]:
    """`cluster file list`: the setup task's output at `path`, as az's LogFile rows (snake_case).

    az read it only from a cluster-level Azure File share or blob container; a local folder
    (an absolute stdOutErrPathPrefix, or a cluster-level localFolders volume) works here too.
    """
    from batchai_cli.services.clusters import get_cluster
    from batchai_cli.storage import paths

    get_cluster(session, rid)
    sub_path = _relative(path, "--path")
    properties = session.state.get_private(rid).get("properties") or {}
    setup = (properties.get("nodeSetup") or {}).get("setupTask")
    if not setup:
        return []
    prefix, suffix = setup.get("stdOutErrPathPrefix") or "", setup.get("stdOutErrPathSuffix")
    if not suffix:
        raise BatchAIError("List files is not supported for this cluster")
    try:
        # Only cluster-level volumes exist for the setup task, so a job-level path fails here too.
        store, key = paths.resolve(prefix, paths.job_volumes({}, properties))
    except BatchAIError:
        raise BatchAIError(SETUP_UNSUPPORTED) from None
    directory = Directory(store, join_path(key, _relative(suffix, "stdOutErrPathSuffix"), sub_path))
    rows = [
        {
            "name": item["name"],
            "download_url": item["downloadUrl"],
            "is_directory": item["fileType"] == "directory",
            "size": item["contentLength"],
        }
        for item in iter_files(directory, expiry_minutes=expiry_minutes)
    ]
    return sorted(rows, key=lambda row: row["name"])


# -- following a file --------------------------------------------------------------------------


class Text(NamedTuple):
    """Decoded text of the file, and the byte offset just after it (what --offset resumes from)."""

    text: str
    offset: int


def _launches(properties: dict) -> list:
    """Every process the job starts, over all its nodes (toolkits.plan for each task)."""
    from batchai_cli.agent import toolkits

    nodes = int(properties.get("nodeCount") or 1)
    cluster = toolkits.Cluster(["node"] * nodes, list(range(20000, 20100)))
    return [launch for task in range(nodes) for launch in toolkits.plan(properties, task, cluster)]


def main_log_name(properties: dict) -> str:
    """The stdout file of the job's main process: stdout.txt, or stdout-wk-0.txt for toolkits that
    run one process per node (TensorFlow's master worker, not a parameter server)."""
    try:
        launches = _launches(properties)
    except Exception:  # an unusual job file must not stop the job from being followed
        return "stdout.txt"
    main = [launch for launch in launches if launch.role == "master"] or [
        launch for launch in launches if launch.role != "ps"
    ]
    return main[0].stdout if main else "stdout.txt"


def similar_names(name: str, names: list[str]) -> list[str]:
    """The names a user asking for `name` more likely meant: the same stem with a suffix
    (stdout.txt -> stdout-wk-0.txt, stdout-job_prep.txt -> stdout-job_prep-<node>.txt), else close ones."""
    import difflib

    stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
    prefixed = [
        n
        for n in names
        if n != name
        and n.startswith(stem + "-")
        and n.endswith(dot + ext)
        and ("job_prep" in n) == ("job_prep" in name)  # stdout.txt is not a preparation's log
    ]
    # Workers before parameter servers: worker 0 is the master.
    prefixed.sort(key=lambda n: ("-ps-" in n, n))
    return prefixed or difflib.get_close_matches(name, names, n=3, cutoff=0.75)


class FileStream:
    """Follow one file of a job, as `tail -f` would, until the job has ended.

    Iterating yields (kind, value) events:
      ("waiting", name)   once, when the file is not there yet
      ("found", {"url", "offset"})   the file exists; reading starts at offset
      ("text", Text)      new text, decoded across chunk borders
      ("missing", name)   the job ended and never created the file
      ("end", job)        the job as it ended; always the last event
    NotFound when the job is deleted meanwhile; StorageError, naming the offset to resume
    from, when storage stays unreachable for `retry_seconds`.
    """

    def __init__(
        self,
        session: Session,
        rid: ResourceId,
        file_name: str,
        *,
        output_directory_id: str = STDOUTERR,
        path: str = ".",
        offset: int = 0,
        tail: int | None = None,
        poll: float = 0.25,
        max_poll: float = 2.0,
        retry_seconds: float | None = None,
        chunk_size: int = READ_CHUNK,
    ):
        name = _relative(file_name, "--file-name")
        if not name:
            raise UsageError("Give the name of a file with --file-name.")
        self.session, self.rid, self.name = session, rid, file_name
        self.directory = locate(session, rid, output_directory_id=output_directory_id, path=path)
        self.key = join_path(self.directory.key, name)
        self.offset, self.tail = offset, tail
        self.poll, self.max_poll, self.chunk_size = poll, max_poll, chunk_size
        if retry_seconds is None:
            retry_seconds = _env_seconds("BATCHAI_STREAM_RETRY_SECONDS", 30.0)
        self.retry_seconds = retry_seconds

    def _job(self) -> dict:
        from batchai_cli.services.jobs import get_job

        try:
            return get_job(self.session, self.rid)
        except NotFound:
            raise NotFound(
                f'The job "{self.rid.name}" was deleted while "{self.name}" was streamed (stopped at byte offset '
                f"{self.offset}).",
            ) from None

    def _retrying(self, action: Callable[[], Any]) -> Any:
        """Run a storage call, retrying what may pass (network, throttling) for retry_seconds."""
        from batchai_cli.storage._rest import AccessDenied

        deadline, delay = None, 0.5
        while True:
            try:
                return action()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError, ValueError, AccessDenied):
                raise  # waiting would not change these
            except (StorageError, OSError) as exc:
                now = time.monotonic()
                reason = (exc.message if isinstance(exc, BatchAIError) else str(exc)).rstrip(".")
                if deadline is None:
                    deadline = now + self.retry_seconds
                    log.warning("Storage is not answering (%s); retrying for up to %g s.", reason, self.retry_seconds)
                if now >= deadline:
                    raise StorageError(
                        f'Could not read "{self.name}" from {self.directory.store.url(self.key)}: {reason}. '
                        f"Stopped at byte offset {self.offset}.",
                        hint=f"Resume with --offset {self.offset} once storage answers again.",
                    ) from None
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, 4.0)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        store = self.directory.store
        delay, announced = self.poll, False
        while True:
            job = self._job()  # the state before the look, so an ended job's file is complete
            try:
                entry = self._retrying(lambda: store.stat(self.key))
                break
            except FileNotFoundError:
                if job["executionState"] in TERMINAL:
                    yield "missing", {"name": self.name, "similar": self._similar(self._present())}
                    yield "end", job
                    return
                if not announced:
                    announced = True
                    yield "waiting", {"name": self.name, "similar": self._similar(self._expected())}
                time.sleep(delay)
                delay = min(delay * 1.5, self.max_poll)
        if entry.is_dir:
            raise UsageError(f'"{self.name}" is a directory.', hint="List it with `batchai job file list -p`.")
        if self.tail is not None:
            self.offset = self._retrying(lambda: tail_offset(store, self.key, entry.size, self.tail))
        yield "found", {"url": store.url(self.key), "offset": self.offset}
        yield from self._follow(store)

    def _present(self) -> list[str]:
        """The names of the files in the streamed file's folder now."""
        folder = self.key.rpartition("/")[0]
        try:
            return [e.name for e in self.directory.store.list_dir(folder) if not e.is_dir]
        except (FileNotFoundError, NotADirectoryError, StorageError, OSError):
            return []

    def _expected(self) -> list[str]:
        """The log files the job's processes will write (in its stdouterr folder)."""
        if self.directory.key.rstrip("/").rsplit("/", 1)[-1] != STDOUTERR or "/" in self.name:
            return []
        try:
            properties = self.session.state.get_private(self.rid).get("properties") or {}
            return sorted({name for launch in _launches(properties) for name in (launch.stdout, launch.stderr)})
        except Exception:  # a suggestion must never stop the stream
            return []

    def _similar(self, names: list[str]) -> list[str]:
        base = self.name.rsplit("/", 1)[-1]
        return [] if base in names else similar_names(base, names)

    def _follow(self, store: Store) -> Iterator[tuple[str, Any]]:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        read_at, delay = self.offset, self.poll
        quiet_since = time.monotonic()
        while True:
            started = time.monotonic()
            job = self._job()
            ended = job["executionState"] in TERMINAL
            got = False
            while True:
                at = read_at
                data = self._retrying(lambda at=at: store.read_range(self.key, at, self.chunk_size))
                if not ended:
                    # Azure Files grows a file before it writes the new range, so zeros at the end may be
                    # bytes not written yet: they are read again next time (the writer appends in order).
                    data = data.rstrip(b"\0")
                if not data:
                    break
                got = True
                read_at += len(data)
                text = decoder.decode(data)
                if text:
                    # Bytes of a character not yet complete stay in the decoder and are not counted.
                    self.offset = read_at - len(decoder.getstate()[0])
                    yield "text", Text(text, self.offset)
                if len(data) < self.chunk_size:
                    break
            if ended:
                rest = decoder.decode(b"", final=True)
                if rest:
                    self.offset = read_at
                    yield "text", Text(rest, read_at)
                yield "end", job
                return
            # Logs that pause for a few seconds (a line per epoch) keep the short poll; only a longer
            # silence backs off, so a stream idle for minutes costs few requests.
            if got:
                quiet_since = time.monotonic()
            idle = time.monotonic() - quiet_since
            delay = self.poll if idle < IDLE_GRACE else min(max(delay, self.poll) * 1.5, self.max_poll)
            # The period, not the pause, is `delay`: a slow read does not push every later one back.
            time.sleep(max(0.0, delay - (time.monotonic() - started)))


def _env_seconds(name: str, default: float) -> float:
    import os

    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def tail_offset(store: Store, key: str, size: int, lines: int) -> int:
    """The offset where the last `lines` lines of a `size`-byte file start (a final newline ends
    the last line rather than starting an empty one), read backwards in blocks."""
    if lines <= 0:
        return size
    found, end = 0, size
    while end > 0:
        start = max(0, end - TAIL_BLOCK)
        block = store.read_range(key, start, end - start)
        for index in range(len(block) - 1, -1, -1):
            if block[index] == 0x0A and start + index != size - 1:
                found += 1
                if found == lines:
                    return start + index + 1
        end = start
    return 0
