"""The Store contract: what every storage backend (local folder, Azure Blob, Azure Files) provides.

A Store is rooted somewhere (a local folder, a container plus an optional prefix, a share plus an
optional directory) and addressed with '/'-separated paths relative to that root. Backends
implement the few primitive methods; the derived helpers (`walk`, `exists`, `read`,
`upload_file`, `download_file`) are written once here and overridden only where a service has a
faster way (Blob lists a whole tree in one flat listing).

Errors are Python's own: FileNotFoundError, FileExistsError, IsADirectoryError,
NotADirectoryError, PermissionError, ValueError for a bad path, and
`batchai_cli.errors.StorageError` for everything a service can do wrong that has no OSError kind
(bad credentials, throttling that outlasted the retries, a refused append). A backend never lets
an azure.core exception or a socket error escape. Every method says which error it raises, when.

Stores are safe to share between threads: the transfer service uploads many files at once
through one Store.
"""

from __future__ import annotations

import itertools
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from batchai_cli.errors import StorageError

# typing is for the type checker only: a node's agent starts faster without importing it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar

# hashlib, tempfile, pathlib and concurrent.futures are imported where they are used: a node's
# agent imports this module for its log shipping, and starts faster without them.

Progress = Callable[[int], None]
"""Called with the number of bytes just transferred (an increment, from any thread)."""

MiB = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    """One file or directory as a Store lists it.

    `path` is relative to the store's root and `name` is its last segment. `last_modified` is an
    aware datetime (None for directories that exist only as a name prefix). `content_md5` is the
    MD5 the service keeps for the file (None when it keeps none, e.g. local folders, or when the
    listing does not carry it, e.g. Azure Files). `etag` and `content_type` are the service's.
    """

    name: str
    path: str
    is_dir: bool
    size: int = 0
    last_modified: datetime | None = None
    content_md5: bytes | None = None
    content_type: str | None = None
    etag: str | None = None


def clean_path(path: str) -> str:
    """Normalise a store path: '/'-separated, no leading, trailing or doubled '/', no '.' segments.

    Raises ValueError for a '..' segment: a path may never climb out of the store's root.
    """
    parts = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise ValueError(f"'..' is not allowed in a storage path: {path!r}")
        parts.append(part)
    return "/".join(parts)


def join_path(*parts: str) -> str:
    """Join already-clean path parts, skipping empty ones."""
    return "/".join(p for p in parts if p)


def base_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def parent_path(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def check_md5(data: bytes, content_md5: bytes | None) -> bytes:
    """The MD5 of `data`; StorageError when a caller-given `content_md5` does not match it."""
    import hashlib

    actual = hashlib.md5(data).digest()
    if content_md5 is not None and content_md5 != actual:
        raise StorageError(
            "The data does not match the Content-MD5 given with it (Md5Mismatch).",
            hint="The local file changed while it was read; run the command again.",
        )
    return actual


def file_md5(local_path: str | os.PathLike[str], *, chunk_size: int = 4 * MiB) -> bytes:
    """MD5 of a local file, read in chunks so memory stays bounded."""
    import hashlib

    digest = hashlib.md5()
    with open(local_path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.digest()


class Store(ABC):
    """A place to keep files: the contract every backend passes (tests/storage/contract.py).

    Paths are '/'-separated and relative to the root; `..` segments raise ValueError everywhere.
    """

    scheme: ClassVar[str]
    """The URL scheme open_store() knows this backend by."""

    stores_md5: ClassVar[bool] = True
    """Whether the service keeps a Content-MD5 per file (local folders do not)."""

    block_size: int = 8 * MiB
    """Chunk size for upload_file/download_file; memory use is about block_size x concurrency."""

    # -- primitives ---------------------------------------------------------------------------

    @abstractmethod
    def url(self, path: str = "") -> str:
        """The plain URL of `path` (no credentials in it), as az prints it."""

    @abstractmethod
    def list_dir(self, path: str = "") -> Iterator[Entry]:
        """One level of `path`: its files and directories, fetched page by page as it is iterated.

        Directory markers (zero-byte blobs with metadata hdi_isfolder=true, or a blob whose name
        is also a prefix) are shown as directories, never as files.
        Raises FileNotFoundError when `path` does not exist (for Blob: no blob under the prefix
        and no marker), NotADirectoryError when it is a file.
        """

    @abstractmethod
    def stat(self, path: str) -> Entry:
        """The entry at `path` ("" is the root). FileNotFoundError when there is none."""

    @abstractmethod
    def read_range(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        """Up to `length` bytes (all when None) of the file at `path`, from `offset`.

        An offset at or after the end returns b"". FileNotFoundError when the file does not
        exist, IsADirectoryError when `path` is a directory.
        """

    @abstractmethod
    def write(
        self,
        path: str,
        data: bytes,
        *,
        content_type: str | None = None,
        content_md5: bytes | None = None,
        overwrite: bool = True,
    ) -> Entry:
        """Store `data` as the whole file at `path`, creating parent directories; return its entry.

        The file's MD5 is always stored where the service keeps one. A given `content_md5` is
        checked against `data` (StorageError on a mismatch). Readers see the old file or the new
        one, never a part (Azure Files: the MD5 is set last, so a torn file has none).
        FileExistsError when overwrite=False and the file exists; IsADirectoryError when `path`
        is "" or (local, Files) a directory.
        """

    @abstractmethod
    def append(self, path: str, data: bytes, offset: int) -> int:
        """Append `data` to the file at `path`, which must be exactly `offset` bytes long now.

        Creates the file when offset == 0 and it does not exist. Returns the new size.
        A retry of the same bytes at the same offset after a success is recognised and returns
        the same size without writing twice. Raises StorageError when the stored size is not
        `offset` (someone else appended, or an earlier append was lost), FileNotFoundError when
        offset > 0 and the file does not exist.

        Readers may see the new size before the new bytes: Azure Files grows the file, then
        writes the range, so a read in between returns zeros at the end (job file stream waits
        for them to be filled while the job runs).
        """

    @abstractmethod
    def makedirs(self, path: str) -> None:
        """Make the directory `path` and its parents; nothing happens if it exists.

        makedirs("") creates the root (folder, container, share). FileExistsError when a file
        is in the way.
        """

    @abstractmethod
    def delete(self, path: str, *, recursive: bool = False) -> None:
        """Delete the file or directory at `path`.

        A directory needs recursive=True (IsADirectoryError otherwise). FileNotFoundError when
        nothing is there; ValueError for the root (delete the container or share instead).
        """

    @abstractmethod
    def download_url(self, path: str, *, expiry_minutes: int = 60) -> str:
        """A URL anyone can GET the file with until it expires.

        Azure: a SAS with sp=rl and se = now + expiry_minutes (signed with the account key, or
        the configured SAS token reused). Local: a file:// URL. StorageError when the
        credentials cannot sign one (azure-identity login without a key or SAS).
        """

    @abstractmethod
    def create_root(self) -> bool:
        """Create the root (folder, container, share); True if created, False if it existed."""

    # -- derived helpers ------------------------------------------------------------------------

    def walk(self, path: str = "", *, missing_ok: bool = False) -> Iterator[Entry]:
        """Every file below `path`, recursively, with size and (where listed) MD5; no directories.

        Raises what list_dir raises for `path` itself. With missing_ok, a `path` that is missing
        (or a file) yields nothing, which spares the requests that tell "missing" from "empty";
        a missing root (folder, container, share) still raises FileNotFoundError.
        """
        path = clean_path(path)
        top = self.list_dir(path)
        try:
            first = next(top, None)
        except (FileNotFoundError, NotADirectoryError):
            if not (missing_ok and path):
                raise
            self.stat("")  # FileNotFoundError when the root itself is missing
            return
        pending: list[str] = []
        for entry in itertools.chain([first] if first else [], top):
            if entry.is_dir:
                pending.append(entry.path)
            else:
                yield entry
        while pending:
            current = pending.pop()
            for entry in self.list_dir(current):
                if entry.is_dir:
                    pending.append(entry.path)
                else:
                    yield entry

    def exists(self, path: str) -> bool:
        """True when a file or directory is at `path`. Raises only StorageError (and ValueError)."""
        try:
            self.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def read(self, path: str) -> bytes:
        """The whole file at `path`; the errors of read_range."""
        return self.read_range(path, 0, None)

    def upload_file(
        self,
        path: str,
        local_path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        max_concurrency: int = 4,
        progress: Progress | None = None,
    ) -> Entry:
        """Upload a local file of any size, storing the MD5 of the whole file.

        This generic version reads the file whole; backends override it with parallel chunked
        uploads whose memory stays near block_size x max_concurrency.
        FileNotFoundError when `local_path` does not exist; otherwise the errors of write().
        """
        return self._upload_whole(path, local_path, content_type, progress)

    def _upload_whole(
        self, path: str, local_path: str | os.PathLike[str], content_type: str | None, progress: Progress | None
    ) -> Entry:
        """upload_file for a file small enough to hold in memory: one write()."""
        with open(local_path, "rb") as handle:
            data = handle.read()
        entry = self.write(path, data, content_type=content_type)
        if progress:
            progress(len(data))
        return entry

    def download_file(
        self,
        path: str,
        local_path: str | os.PathLike[str],
        *,
        max_concurrency: int = 4,
        progress: Progress | None = None,
    ) -> Entry:
        """Download the file at `path` to `local_path`, in parallel ranges of block_size.

        The data lands in a temporary file beside `local_path`, renamed into place once complete,
        so an interrupted download never leaves a partial file under the real name. When the
        service keeps an MD5 it is checked (StorageError on a mismatch). The errors of stat and
        read_range; IsADirectoryError when `path` is a directory.
        """
        entry = self.stat(path)
        if entry.is_dir:
            raise IsADirectoryError(f"'{path}' is a directory")
        import tempfile
        from pathlib import Path

        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            offsets = range(0, entry.size, self.block_size)
            lock = threading.Lock()

            def fetch(offset: int) -> None:
                chunk = self.read_range(path, offset, min(self.block_size, entry.size - offset))
                if len(chunk) != min(self.block_size, entry.size - offset):
                    raise StorageError(f"'{path}' changed while it was downloaded.", hint="Run it again.")
                os.pwrite(fd, chunk, offset)
                if progress:
                    with lock:
                        progress(len(chunk))

            run_parallel(fetch, offsets, max_concurrency)
            os.fsync(fd)
            os.close(fd)
            fd = -1
            if entry.content_md5 is not None and file_md5(tmp_name) != entry.content_md5:
                raise StorageError(
                    f"The download of '{path}' does not match its stored Content-MD5.",
                    hint="The file may have changed during the download; run it again.",
                )
            os.replace(tmp_name, target)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return entry

    def _settle_append(self, path: str, data: bytes, offset: int, size: int) -> int:
        """For append(), when the file is `size` bytes instead of `offset`.

        If `data` is already there at `offset` (an append whose answer was lost, then retried),
        return the size; otherwise raise StorageError, so nothing is written twice or out of place.
        """
        if size == offset + len(data) and self.read_range(path, offset, len(data)) == data:
            return size
        raise StorageError(
            f"Refused to append to {self.url(path)}: it holds {size} bytes, not {offset} (another "
            "writer, or an earlier append that was lost)."
        )

    def wait_out_outages(self, seconds: float) -> None:  # noqa: B027 - a local folder has no outages
        """Retry each request for up to `seconds` while the service does not answer, instead of
        failing after a few quick retries (a long batch transfer rides out a short outage)."""

    def close(self) -> None:  # noqa: B027 - optional hook: most backends hold nothing to release
        """Release connections; the store must not be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_parallel(func: Callable[[int], None], items: range | list[int], max_concurrency: int) -> None:
    """Call func(item) for each item on up to max_concurrency threads; re-raise the first error.

    On the first error the items not yet started are cancelled, so a failing service is not
    hammered with the rest of a large file.
    """
    if max_concurrency <= 1 or len(items) <= 1:
        for item in items:
            func(item)
        return
    from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(max_workers=min(max_concurrency, len(items))) as pool:
        futures: list[Future[None]] = [pool.submit(func, item) for item in items]
        _, not_done = wait(futures, return_when=FIRST_EXCEPTION)
        for future in not_done:
            future.cancel()
        for future in futures:
            if future.done() and not future.cancelled() and future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
