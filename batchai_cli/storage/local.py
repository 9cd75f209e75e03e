"""A local folder as a Store: the embedded default, where no storage account is needed.

Writes go to a temporary file beside the target and are renamed into place, so a reader (or a
re-run after a kill) sees the old file or the new one, never a part. No MD5 is kept per file, so
entries carry content_md5=None.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from batchai_cli.storage.base import Entry, Progress, Store, base_name, check_md5, clean_path, join_path


class LocalStore(Store):
    """A folder on this machine."""

    scheme = "file"
    stores_md5 = False

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser().absolute()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _local(self, path: str) -> Path:
        path = clean_path(path)
        return self.root / path if path else self.root

    def url(self, path: str = "") -> str:
        return self._local(path).as_uri()

    def _entry(self, path: str, st: os.stat_result, is_dir: bool) -> Entry:
        return Entry(
            name=base_name(path),
            path=path,
            is_dir=is_dir,
            size=0 if is_dir else st.st_size,
            last_modified=datetime.fromtimestamp(st.st_mtime, timezone.utc),
        )

    def list_dir(self, path: str = "") -> Iterator[Entry]:
        path = clean_path(path)
        with os.scandir(self._local(path)) as entries:  # FileNotFoundError / NotADirectoryError
            for dir_entry in entries:
                if dir_entry.name.startswith(".") and dir_entry.name.endswith(_TMP_SUFFIX):
                    continue
                is_dir = dir_entry.is_dir()
                yield self._entry(join_path(path, dir_entry.name), dir_entry.stat(), is_dir)

    def walk(self, path: str = "", *, missing_ok: bool = False) -> Iterator[Entry]:
        path = clean_path(path)
        top = self._local(path)
        if not top.is_dir():
            if missing_ok and path:
                self.root.stat()  # FileNotFoundError when the root itself is missing
                return
            top.stat()  # FileNotFoundError when missing
            raise NotADirectoryError(f"Not a directory: {top}")
        for dir_path, dir_names, file_names in os.walk(top, onerror=_raise):
            dir_names.sort()
            relative_dir = Path(dir_path).relative_to(self.root).as_posix()
            relative_dir = "" if relative_dir == "." else relative_dir
            for file_name in sorted(file_names):
                if file_name.startswith(".") and file_name.endswith(_TMP_SUFFIX):
                    continue
                entry_path = join_path(relative_dir, file_name)
                yield self._entry(entry_path, os.stat(os.path.join(dir_path, file_name)), False)

    def stat(self, path: str) -> Entry:
        path = clean_path(path)
        st = self._local(path).stat()
        return self._entry(path, st, os.path.isdir(self._local(path)))

    def read_range(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        with open(self._local(path), "rb") as f:  # IsADirectoryError for a directory
            f.seek(offset)
            return f.read() if length is None else f.read(length)

    def write(
        self,
        path: str,
        data: bytes,
        *,
        content_type: str | None = None,
        content_md5: bytes | None = None,
        overwrite: bool = True,
    ) -> Entry:
        path = clean_path(path)
        if not path:
            raise IsADirectoryError(f"The store's root is a directory: {self.root}")
        check_md5(data, content_md5)
        target = self._local(path)
        if target.is_dir():
            raise IsADirectoryError(f"Is a directory: {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._write_temp(target, data)
        self._commit(tmp, target, overwrite)
        return self.stat(path)

    def _write_temp(self, target: Path, data: bytes) -> str:
        import tempfile  # here: a node's agent, which only appends, starts faster

        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=_TMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    @staticmethod
    def _commit(tmp: str, target: Path, overwrite: bool) -> None:
        try:
            if overwrite:
                os.replace(tmp, target)
            else:
                # link() fails if the name is taken, which makes "create only if absent" atomic.
                os.link(tmp, target)
                os.unlink(tmp)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def upload_file(
        self,
        path: str,
        local_path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        max_concurrency: int = 4,
        progress: Progress | None = None,
    ) -> Entry:
        """Copy in chunks through a temporary file, so memory stays bounded for any size."""
        path = clean_path(path)
        if not path:
            raise IsADirectoryError(f"The store's root is a directory: {self.root}")
        target = self._local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        import tempfile

        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=_TMP_SUFFIX)
        try:
            with open(local_path, "rb") as source, os.fdopen(fd, "wb") as dest:
                while chunk := source.read(self.block_size):
                    dest.write(chunk)
                    if progress:
                        progress(len(chunk))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._commit(tmp, target, overwrite=True)
        return self.stat(path)

    def append(self, path: str, data: bytes, offset: int) -> int:
        path = clean_path(path)
        if not path:
            raise IsADirectoryError(f"The store's root is a directory: {self.root}")
        target = self._local(path)
        if offset == 0:
            target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | (os.O_CREAT if offset == 0 else 0)
        fd = os.open(target, flags, 0o644)  # FileNotFoundError when offset > 0 and missing
        try:
            size = os.fstat(fd).st_size
            if size != offset:
                return self._settle_append(path, data, offset, size)
            written = 0
            try:
                while written < len(data):
                    written += os.pwrite(fd, data[written:], offset + written)
            except OSError:
                # A failed append (a full disk writes part of it) leaves the file as it was, so the
                # retry appends at the same offset and the error stays the real one.
                os.ftruncate(fd, offset)
                raise
            return offset + written
        finally:
            os.close(fd)

    def makedirs(self, path: str) -> None:
        target = self._local(path)
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"A file is in the way: {target}")
        try:
            target.mkdir(parents=True, exist_ok=True)
        except NotADirectoryError:
            raise FileExistsError(f"A file is in the way of {target}") from None

    def delete(self, path: str, *, recursive: bool = False) -> None:
        path = clean_path(path)
        if not path:
            raise ValueError(f"Refusing to delete the store's root: {self.root}")
        target = self._local(path)
        if target.is_dir() and not target.is_symlink():
            if not recursive:
                raise IsADirectoryError(f"Is a directory (use recursive=True): {target}")
            shutil.rmtree(target)
        else:
            target.unlink()  # FileNotFoundError when missing

    def download_url(self, path: str, *, expiry_minutes: int = 60) -> str:
        return self.url(path)

    def create_root(self) -> bool:
        if self.root.is_dir():
            return False
        self.root.mkdir(parents=True)
        return True


_TMP_SUFFIX = ".batchai-tmp"


def _raise(error: OSError) -> None:
    raise error
