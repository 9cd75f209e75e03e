"""Azure Files as a Store: a share plus an optional directory, over the Files REST API.

Requests go through the same small REST client as Blob (_rest.py: SharedKey/SAS signing, short
timeouts, bounded retries); azure-storage-file-share is imported only to sign download SAS URLs.
The REST version is 2023-11-03, so the SMB properties (file permission, attributes, times) may be
left to the service's defaults.

Azure Files has real directories and no atomic whole-file write: a file is created at its final
size, filled with Put Range calls of at most 4 MiB, and its Content-MD5 is set last. A writer
killed half-way therefore leaves a file without an MD5, which the transfer service's
`--skip-unchanged` treats as changed. Listings carry no MD5 (Entry.content_md5 is None from
list_dir/walk; stat has it). There is no conditional append either: append() checks the size,
grows the file and puts the range, which is safe for the one writer per log file the agent is.
"""

from __future__ import annotations

import base64
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from datetime import datetime

from batchai_cli.errors import StorageError
from batchai_cli.storage._azure import AzureStore, upload_in_chunks
from batchai_cli.storage._rest import Response, RestClient, http_date, md5_header, quoted_etag
from batchai_cli.storage.base import (
    Entry,
    MiB,
    Progress,
    base_name,
    check_md5,
    clean_path,
    join_path,
    parent_path,
)
from batchai_cli.storage.credentials import StorageCredentials

RANGE_MAX = 4 * MiB
"""The largest Put Range the Files service accepts."""

# Set File Properties clears every content header it is not sent, so these are carried over.
_CONTENT_HEADERS = {
    "content-type": "x-ms-content-type",
    "content-encoding": "x-ms-content-encoding",
    "content-language": "x-ms-content-language",
    "cache-control": "x-ms-cache-control",
    "content-disposition": "x-ms-content-disposition",
}


class FileShareStore(AzureStore):
    """A share (and optional directory) in Azure Files, or in the Azure Files emulator."""

    scheme = "azurefile"
    stores_md5 = True
    service = "file"
    root_kind = "share"
    root_missing_code = "ShareNotFound"

    def __init__(
        self,
        share: str,
        directory: str = "",
        *,
        credentials: StorageCredentials,
        page_size: int = 5000,
        block_size: int = RANGE_MAX,
        client: RestClient | None = None,
    ):
        super().__init__(
            share, directory, credentials=credentials, page_size=page_size, block_size=block_size, client=client
        )

    @property
    def share(self) -> str:
        return self.root

    @property
    def directory(self) -> str:
        return self.sub_path

    # -- reading ------------------------------------------------------------------------------

    def _head_file(self, path: str) -> Response:
        return self.client.request("HEAD", self._path(path))

    def _head_dir(self, path: str) -> Response:
        if not self._name(path):
            return self.client.request("HEAD", self.client.path_for(self.share), query=[("restype", "share")])
        return self.client.request("HEAD", self._path(path), query=[("restype", "directory")])

    def stat(self, path: str) -> Entry:
        path = clean_path(path)
        if path:
            response = self._head_file(path)
            if response.status == 200:
                return self._file_entry(path, response.headers)
            if response.status not in (404, 409):  # 409: a directory asked for as a file
                raise self._error(response, path)
        response = self._head_dir(path)
        if response.status == 403 and not self._name(path) and self.credentials.kind == "sas":
            # A share SAS may not read share properties; listing the root proves it exists.
            next(iter(self.list_dir("")), None)
            return Entry(name="", path="", is_dir=True)
        self._check(response, path)
        return Entry(
            name=base_name(path),
            path=path,
            is_dir=True,
            last_modified=http_date(response.headers.get("last-modified")),
            etag=response.headers.get("etag"),
        )

    def _file_entry(self, path: str, headers: Mapping[str, str]) -> Entry:
        return Entry(
            name=base_name(path),
            path=path,
            is_dir=False,
            size=int(headers.get("content-length", "0")),
            last_modified=http_date(headers.get("last-modified")),
            content_md5=md5_header(headers.get("content-md5")),
            content_type=headers.get("content-type"),
            etag=headers.get("etag"),
        )

    def list_dir(self, path: str = "") -> Iterator[Entry]:
        path = clean_path(path)
        name = self._name(path)
        marker = ""
        while True:
            query = [
                ("restype", "directory"),
                ("comp", "list"),
                ("include", "Timestamps,ETag"),
                ("maxresults", str(self.page_size)),
            ]
            if marker:
                query.append(("marker", marker))
            target = self.client.path_for(self.share, name) if name else self.client.path_for(self.share)
            response = self.client.request("GET", target, query=query)
            # stat raises FileNotFoundError when nothing is there
            if (
                response.status == 404
                and path
                and response.error_code != "ShareNotFound"
                and not self.stat(path).is_dir
            ):
                raise NotADirectoryError(f"Not a directory: {self.url(path)}")
            self._check(response, path)
            root = ET.fromstring(response.body)
            entries = root.find("Entries")
            for element in entries if entries is not None else ():
                entry_name = element.findtext("Name") or ""
                properties = element.find("Properties")

                def prop(tag: str, properties: ET.Element | None = properties) -> str | None:
                    return properties.findtext(tag) if properties is not None else None

                yield Entry(
                    name=entry_name,
                    path=join_path(path, entry_name),
                    is_dir=element.tag == "Directory",
                    size=int(prop("Content-Length") or 0) if element.tag == "File" else 0,
                    last_modified=http_date(prop("Last-Modified")),
                    etag=quoted_etag(prop("Etag")),
                )
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return

    def read_range(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        path = clean_path(path)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0 or not path:
            if self.stat(path).is_dir:
                raise IsADirectoryError(f"Is a directory: {self.url(path)}")
            return b""
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["x-ms-range"] = f"bytes={offset}-{end}"
        response = self.client.request("GET", self._path(path), headers=headers)
        if response.status in (200, 206):
            return response.body
        if response.status == 416:
            return b""
        if response.status in (404, 409) and self._head_dir(path).status == 200:
            raise IsADirectoryError(f"Is a directory: {self.url(path)}")
        raise self._error(response, path)

    # -- writing --------------------------------------------------------------------------------

    def _create_file(self, path: str, size: int, content_type: str | None, *, md5: bytes | None = None) -> Response:
        """Create (or truncate) the file at its final size, making parent directories on demand."""
        headers = {"x-ms-type": "file", "x-ms-content-length": str(size)}
        if content_type:
            headers["x-ms-content-type"] = content_type
        if md5 is not None:
            headers["x-ms-content-md5"] = base64.b64encode(md5).decode()
        response = self.client.request("PUT", self._path(path), headers=headers)
        if response.status == 404 and response.error_code == "ParentNotFound":
            self.makedirs(parent_path(path))
            response = self.client.request("PUT", self._path(path), headers=headers)
        if response.status == 409 and self._head_dir(path).status == 200:
            raise IsADirectoryError(f"Is a directory: {self.url(path)}")
        return self._check(response, path)

    def _put_range(self, path: str, data: bytes, offset: int) -> None:
        response = self.client.request(
            "PUT",
            self._path(path),
            query=[("comp", "range")],
            headers={"x-ms-write": "update", "x-ms-range": f"bytes={offset}-{offset + len(data) - 1}"},
            body=data,
        )
        self._check(response, path)

    def _set_properties(self, path: str, size: int, headers: Mapping[str, str]) -> Response:
        sent = {"x-ms-content-length": str(size), **headers}
        response = self.client.request("PUT", self._path(path), query=[("comp", "properties")], headers=sent)
        return self._check(response, path)

    def _finish(self, path: str, size: int, md5: bytes, content_type: str | None) -> Entry:
        """Set the MD5 last: a file that has one was written completely."""
        headers = {"x-ms-content-md5": base64.b64encode(md5).decode()}
        if content_type:
            headers["x-ms-content-type"] = content_type
        response = self._set_properties(path, size, headers)
        return Entry(
            name=base_name(path),
            path=path,
            is_dir=False,
            size=size,
            last_modified=http_date(response.headers.get("last-modified")),
            content_md5=md5,
            content_type=content_type or "application/octet-stream",
            etag=response.headers.get("etag"),
        )

    def _refuse_existing(self, path: str) -> None:
        # Files has no create-if-absent; a racing writer between this check and the create wins.
        if self._head_file(path).status == 200:
            raise FileExistsError(f"Already exists: {self.url(path)}")

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
            raise IsADirectoryError("The store's root is a directory; give a file path.")
        md5 = check_md5(data, content_md5)
        if not overwrite:
            self._refuse_existing(path)
        if not data:
            response = self._create_file(path, 0, content_type, md5=md5)
            return Entry(
                name=base_name(path),
                path=path,
                is_dir=False,
                last_modified=http_date(response.headers.get("last-modified")),
                content_md5=md5,
                content_type=content_type or "application/octet-stream",
                etag=response.headers.get("etag"),
            )
        self._create_file(path, len(data), content_type)
        for start in range(0, len(data), RANGE_MAX):
            self._put_range(path, data[start : start + RANGE_MAX], start)
        return self._finish(path, len(data), md5, content_type)

    def upload_file(
        self,
        path: str,
        local_path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        max_concurrency: int = 4,
        progress: Progress | None = None,
    ) -> Entry:
        """Create the file at full size, put ranges in parallel (bounded memory), set the MD5 last."""
        path = clean_path(path)
        if not path:
            raise IsADirectoryError("The store's root is a directory; give a file path.")
        size = os.path.getsize(local_path)
        if size <= self.block_size:
            return self._upload_whole(path, local_path, content_type, progress)
        self._create_file(path, size, content_type)

        def put(_index: int, offset: int, chunk: bytes) -> None:
            self._put_range(path, chunk, offset)

        md5, total, _ = upload_in_chunks(local_path, min(self.block_size, RANGE_MAX), max_concurrency, put, progress)
        if total != size:
            raise StorageError(f"{local_path} changed size while it was uploaded.", hint="Run the upload again.")
        return self._finish(path, total, md5, content_type)

    def append(self, path: str, data: bytes, offset: int) -> int:
        path = clean_path(path)
        if not path:
            raise IsADirectoryError("The store's root is a directory; give a file path.")
        response = self._head_file(path)
        if response.status == 404 and offset == 0:
            response = self._create_file(path, 0, None)
            size, headers = 0, {}
        else:
            if response.status == 404:
                raise FileNotFoundError(f"No such file: {self.url(path)}")
            self._check(response, path)
            size, headers = int(response.headers.get("content-length", "0")), response.headers
        if size != offset:
            return self._settle_append(path, data, offset, size)
        if not data:
            return offset
        # Growing the file resets its MD5 (now stale) and keeps its content headers.
        kept = {header: headers[name] for name, header in _CONTENT_HEADERS.items() if headers.get(name)}
        self._set_properties(path, offset + len(data), kept)
        for start in range(0, len(data), RANGE_MAX):
            self._put_range(path, data[start : start + RANGE_MAX], offset + start)
        return offset + len(data)

    def makedirs(self, path: str) -> None:
        path = clean_path(path)
        if not path:
            self.create_root()
            return
        done = ""
        for part in path.split("/"):
            done = join_path(done, part)
            response = self.client.request("PUT", self._path(done), query=[("restype", "directory")])
            if response.status == 201:
                continue
            if response.status == 409:
                if self._head_dir(done).status != 200:
                    raise FileExistsError(f"A file is in the way: {self.url(done)}")
                continue
            if response.status == 404 and response.error_code == "ParentNotFound" and self.directory:
                self.makedirs("")  # the store's own directory is missing
                self.makedirs(path)
                return
            raise self._error(response, done)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        path = clean_path(path)
        if not path:
            raise ValueError("Refusing to delete the store's root; delete the share instead.")
        if not self.stat(path).is_dir:
            self._check(self.client.request("DELETE", self._path(path)), path)
            return
        if not recursive:
            raise IsADirectoryError(f"Is a directory (use recursive=True): {self.url(path)}")
        for entry in list(self.list_dir(path)):
            if entry.is_dir:
                self.delete(entry.path, recursive=True)
            else:
                response = self.client.request("DELETE", self._path(entry.path))
                if response.status != 404:
                    self._check(response, entry.path)
        self._check(self.client.request("DELETE", self._path(path), query=[("restype", "directory")]), path)

    def _sign_sas(self, name: str, expiry: datetime, permission: str = "rl") -> str:
        from azure.storage.fileshare import generate_file_sas

        return generate_file_sas(
            account_name=self.credentials.account_name,
            share_name=self.root,
            file_path=name.split("/"),
            account_key=self.credentials.account_key,
            permission=permission,
            expiry=expiry,
        )

    def create_root(self) -> bool:
        response = self.client.request("PUT", self.client.path_for(self.share), query=[("restype", "share")])
        if response.status == 409 and response.error_code == "ShareAlreadyExists":
            created = False
        else:
            self._check(response)
            created = True
        if self.directory:
            exists = self._head_dir("").status == 200
            if not exists:
                self.makedirs_under_share(self.directory)
            created = created or not exists
        return created

    def makedirs_under_share(self, directory: str) -> None:
        """makedirs for the store's own directory (relative to the share, not to the store)."""
        share_root = FileShareStore(self.share, credentials=self.credentials, client=self.client)
        share_root.makedirs(directory)

    def delete_root(self) -> bool:
        """Delete the share; True if it existed."""
        response = self.client.request(
            "DELETE",
            self.client.path_for(self.share),
            query=[("restype", "share")],
            headers={"x-ms-delete-snapshots": "include"},
        )
        if response.status == 404:
            return False
        self._check(response)
        return True
