"""Azure Blob Storage as a Store: a container plus an optional prefix.

Requests go through the small REST client in _rest.py rather than azure-storage-blob's pipeline
(see that module for the measurement); azure-storage-blob is imported only to sign download SAS
URLs. Directories are name prefixes. Directory markers written by blobfuse, adlfs and the portal
(zero-byte blobs with metadata hdi_isfolder=true, or a zero-byte blob whose name is also a
prefix) are shown as directories and never as files; makedirs writes hdi_isfolder markers so an
empty directory exists for list_dir and stat as it would on a file system.

Every Azure error is translated where the request was made (_azure.AzureStore._error): 404 ->
FileNotFoundError, BlobAlreadyExists -> FileExistsError, 401/403 -> AccessDenied (a StorageError
and a PermissionError) with one line that names the account and never the key.
"""

from __future__ import annotations

import base64
import contextlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote
from xml.sax.saxutils import escape

from batchai_cli.errors import StorageError
from batchai_cli.storage._azure import AzureStore, upload_in_chunks
from batchai_cli.storage._rest import (
    AccessDenied,
    RestClient,
    http_date,
    md5_header,
    quoted_etag,
)
from batchai_cli.storage.base import (
    Entry,
    MiB,
    Progress,
    base_name,
    check_md5,
    clean_path,
    join_path,
    run_parallel,
)
from batchai_cli.storage.credentials import StorageCredentials

APPEND_BLOCK_MAX = 4 * MiB
"""The largest Append Block every service version (and Azurite) accepts."""

FOLDER_METADATA = "hdi_isfolder"


@dataclass(frozen=True)
class _Listed:
    """One element of a List Blobs page: a blob, or (is_prefix) a BlobPrefix ending in '/'."""

    name: str
    is_prefix: bool = False
    size: int = 0
    last_modified: datetime | None = None
    content_md5: bytes | None = None
    content_type: str | None = None
    etag: str | None = None
    is_folder_marker: bool = False


class BlobStore(AzureStore):
    """A container (and optional prefix) in Azure Blob Storage, Azurite included."""

    scheme = "azureblob"
    stores_md5 = True
    service = "blob"
    root_kind = "container"
    root_missing_code = "ContainerNotFound"

    def __init__(
        self,
        container: str,
        prefix: str = "",
        *,
        credentials: StorageCredentials,
        page_size: int = 5000,
        block_size: int = 8 * MiB,
        single_put_max: int = 32 * MiB,
        client: RestClient | None = None,
    ):
        super().__init__(
            container, prefix, credentials=credentials, page_size=page_size, block_size=block_size, client=client
        )
        self.single_put_max = single_put_max

    @property
    def container(self) -> str:
        return self.root

    @property
    def prefix(self) -> str:
        return self.sub_path

    def _blob_path(self, name: str) -> str:
        return self.client.path_for(self.root, name)

    # -- listing ------------------------------------------------------------------------------

    def _list(self, prefix: str, *, delimiter: str | None, page_size: int | None = None) -> Iterator[_Listed]:
        """List Blobs page by page: one request per page_size entries, parsed as it is iterated."""
        marker = ""
        while True:
            query = [("restype", "container"), ("comp", "list"), ("include", "metadata")]
            query.append(("maxresults", str(page_size or self.page_size)))
            if prefix:
                query.append(("prefix", prefix))
            if delimiter:
                query.append(("delimiter", delimiter))
            if marker:
                query.append(("marker", marker))
            response = self._check(self.client.request("GET", self.client.path_for(self.container), query=query))
            root = ET.fromstring(response.body)
            blobs = root.find("Blobs")
            for element in blobs if blobs is not None else ():
                if element.tag == "Blob":
                    yield _parse_blob(element)
                elif element.tag == "BlobPrefix":
                    yield _Listed(name=_element_name(element), is_prefix=True)
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return

    def _has_children(self, name: str) -> bool:
        return next(iter(self._list(name + "/", delimiter="/", page_size=1)), None) is not None

    def list_dir(self, path: str = "") -> Iterator[Entry]:
        path = clean_path(path)
        name = self._name(path)
        list_prefix = name + "/" if name else ""
        found = False
        for item, is_dir in _resolve_markers(self._list(list_prefix, delimiter="/"), keep_dirs=True):
            found = True
            relative_name = item.name[len(list_prefix) :].rstrip("/")
            if not relative_name:
                continue  # a "dir/" marker blob inside the directory it marks
            entry_path = join_path(path, relative_name)
            if is_dir:
                yield Entry(name=relative_name, path=entry_path, is_dir=True, last_modified=item.last_modified)
            else:
                yield self._entry(item, entry_path)
        if not found and path:
            entry = self.stat(path)  # FileNotFoundError for a missing path
            if not entry.is_dir:
                raise NotADirectoryError(f"Not a directory: {self.url(path)}")
        if not found and not path:
            self.stat("")  # FileNotFoundError when the container is missing

    def walk(self, path: str = "", *, missing_ok: bool = False) -> Iterator[Entry]:
        """Every blob below `path` from ONE flat listing, page_size (5000) blobs per request.

        Nothing more: a listing that succeeds proves the container exists, so only an empty
        listing of a sub-path without missing_ok costs requests to tell missing from empty.
        """
        path = clean_path(path)
        name = self._name(path)
        list_prefix = name + "/" if name else ""
        found = False
        for item, is_dir in _resolve_markers(self._list(list_prefix, delimiter=None), keep_dirs=False):
            found = True
            if not is_dir:
                yield self._entry(item, self._relative(item.name))
        if not found and path and not missing_ok:
            entry = self.stat(path)
            if not entry.is_dir:
                raise NotADirectoryError(f"Not a directory: {self.url(path)}")

    def _entry(self, item: _Listed, path: str) -> Entry:
        return Entry(
            name=base_name(path),
            path=path,
            is_dir=False,
            size=item.size,
            last_modified=item.last_modified,
            content_md5=item.content_md5,
            content_type=item.content_type,
            etag=item.etag,
        )

    # -- single objects -----------------------------------------------------------------------

    def stat(self, path: str) -> Entry:
        path = clean_path(path)
        name = self._name(path)
        if not path:
            response = self.client.request(
                "HEAD", self.client.path_for(self.container), query=[("restype", "container")]
            )
            if response.status == 403 and self.credentials.kind == "sas":
                return self._root_through_listing()
            self._check(response)
            return Entry(name="", path="", is_dir=True, last_modified=http_date(response.headers.get("last-modified")))
        response = self.client.request("HEAD", self._blob_path(name))
        if response.status == 200:
            headers = response.headers
            size = int(headers.get("content-length", "0"))
            if _is_folder(headers) or (size == 0 and self._has_children(name)):
                return Entry(
                    name=base_name(path), path=path, is_dir=True, last_modified=http_date(headers.get("last-modified"))
                )
            return Entry(
                name=base_name(path),
                path=path,
                is_dir=False,
                size=size,
                last_modified=http_date(headers.get("last-modified")),
                content_md5=md5_header(headers.get("content-md5")),
                content_type=headers.get("content-type"),
                etag=headers.get("etag"),
            )
        if response.status == 404 and self._has_children(name):
            return Entry(name=base_name(path), path=path, is_dir=True)
        raise self._error(response, path)

    def _root_through_listing(self) -> Entry:
        """The root's entry for a container SAS, which may not read container properties."""
        # A SAS without list permission cannot tell either; a missing container shows on the first write.
        with contextlib.suppress(AccessDenied):
            next(iter(self._list(self.prefix + "/" if self.prefix else "", delimiter="/", page_size=1)), None)
        return Entry(name="", path="", is_dir=True)

    def read_range(self, path: str, offset: int = 0, length: int | None = None) -> bytes:
        path = clean_path(path)
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        if length == 0:
            if self.stat(path).is_dir:
                raise IsADirectoryError(f"Is a directory: {self.url(path)}")
            return b""
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["x-ms-range"] = f"bytes={offset}-{end}"
        response = self.client.request("GET", self._blob_path(self._name(path)), headers=headers)
        if response.status in (200, 206):
            if _is_folder(response.headers) or (
                response.status == 200 and not response.body and self._has_children(self._name(path))
            ):
                raise IsADirectoryError(f"Is a directory: {self.url(path)}")
            return response.body
        if response.status == 416:
            return b""
        if response.status == 404 and path and self._has_children(self._name(path)):
            raise IsADirectoryError(f"Is a directory: {self.url(path)}")
        raise self._error(response, path)

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
        headers = {"x-ms-blob-type": "BlockBlob", "Content-MD5": base64.b64encode(md5).decode()}
        if content_type:
            headers["x-ms-blob-content-type"] = content_type
        if not overwrite:
            headers["If-None-Match"] = "*"
        response = self.client.request("PUT", self._blob_path(self._name(path)), headers=headers, body=data)
        if response.status in (409, 412) and not overwrite:
            raise FileExistsError(f"Already exists: {self.url(path)}")
        self._check(response, path)
        return Entry(
            name=base_name(path),
            path=path,
            is_dir=False,
            size=len(data),
            last_modified=http_date(response.headers.get("last-modified")),
            content_md5=md5,
            content_type=content_type or "application/octet-stream",
            etag=response.headers.get("etag"),
        )

    def upload_file(
        self,
        path: str,
        local_path: str | os.PathLike[str],
        *,
        content_type: str | None = None,
        max_concurrency: int = 4,
        progress: Progress | None = None,
    ) -> Entry:
        """Small files in one Put Blob; larger ones as parallel Put Blocks and one Put Block List.

        The block list commit is atomic: until it succeeds readers see the old blob (or none),
        so a killed upload leaves nothing torn. Memory stays near max_concurrency + 2 blocks.
        """
        path = clean_path(path)
        if not path:
            raise IsADirectoryError("The store's root is a directory; give a file path.")
        size = os.path.getsize(local_path)
        if size <= self.single_put_max:
            return self._upload_whole(path, local_path, content_type, progress)
        return self._upload_blocks(path, local_path, content_type, max(1, max_concurrency), progress)

    def _upload_blocks(
        self,
        path: str,
        local_path: str | os.PathLike[str],
        content_type: str | None,
        max_concurrency: int,
        progress: Progress | None,
    ) -> Entry:
        blob_path = self._blob_path(self._name(path))
        block_size = max(self.block_size, -(-os.path.getsize(local_path) // 50_000))

        def put_block(index: int, _offset: int, chunk: bytes) -> None:
            query = [("comp", "block"), ("blockid", _block_id(index))]
            self._check(self.client.request("PUT", blob_path, query=query, body=chunk), path)

        md5, total, count = upload_in_chunks(local_path, block_size, max_concurrency, put_block, progress)
        body = (
            '<?xml version="1.0" encoding="utf-8"?><BlockList>'
            + "".join(f"<Latest>{escape(_block_id(index))}</Latest>" for index in range(count))
            + "</BlockList>"
        ).encode()
        headers = {"x-ms-blob-content-md5": base64.b64encode(md5).decode(), "Content-Type": "application/xml"}
        if content_type:
            headers["x-ms-blob-content-type"] = content_type
        response = self._check(
            self.client.request("PUT", blob_path, query=[("comp", "blocklist")], headers=headers, body=body), path
        )
        return Entry(
            name=base_name(path),
            path=path,
            is_dir=False,
            size=total,
            last_modified=http_date(response.headers.get("last-modified")),
            content_md5=md5,
            content_type=content_type or "application/octet-stream",
            etag=response.headers.get("etag"),
        )

    def append(self, path: str, data: bytes, offset: int) -> int:
        path = clean_path(path)
        if not path:
            raise IsADirectoryError("The store's root is a directory; give a file path.")
        blob_path = self._blob_path(self._name(path))
        if offset == 0:
            response = self.client.request(
                "PUT", blob_path, headers={"x-ms-blob-type": "AppendBlob", "If-None-Match": "*"}
            )
            if response.status not in (201, 409, 412):
                raise self._error(response, path)
        if not data:
            size = self.stat(path).size
            return offset if size == offset else self._settle_append(path, data, offset, size)
        position = offset
        for start in range(0, len(data), APPEND_BLOCK_MAX):
            chunk = data[start : start + APPEND_BLOCK_MAX]
            response = self.client.request(
                "PUT",
                blob_path,
                query=[("comp", "appendblock")],
                headers={"x-ms-blob-condition-appendpos": str(position)},
                body=chunk,
            )
            if response.status == 412 and response.error_code == "AppendPositionConditionNotMet":
                return self._settle_append(path, data, offset, self.stat(path).size)
            if response.status == 409 and response.error_code == "InvalidBlobType":
                raise StorageError(f"{self.url(path)} is not an append blob, so it cannot be appended to.")
            self._check(response, path)
            position += len(chunk)
        return position

    def makedirs(self, path: str) -> None:
        path = clean_path(path)
        if not path:
            self.create_root()
            return
        try:
            entry = self.stat(path)
        except FileNotFoundError:
            entry = None
        if entry is not None:
            if not entry.is_dir:
                raise FileExistsError(f"A file is in the way: {self.url(path)}")
            return
        response = self.client.request(
            "PUT",
            self._blob_path(self._name(path)),
            headers={"x-ms-blob-type": "BlockBlob", f"x-ms-meta-{FOLDER_METADATA}": "true"},
        )
        self._check(response, path)

    def delete(self, path: str, *, recursive: bool = False) -> None:
        path = clean_path(path)
        if not path:
            raise ValueError("Refusing to delete the store's root; delete the container instead.")
        entry = self.stat(path)
        name = self._name(path)
        if not entry.is_dir:
            response = self.client.request("DELETE", self._blob_path(name))
            self._check(response, path)
            return
        if not recursive:
            raise IsADirectoryError(f"Is a directory (use recursive=True): {self.url(path)}")
        names = [item.name for item in self._list(name + "/", delimiter=None)]

        def delete_one(index: int) -> None:
            response = self.client.request("DELETE", self._blob_path(names[index]))
            if response.status not in (202, 404):
                raise self._error(response, self._relative(names[index]))

        run_parallel(delete_one, range(len(names)), 8)
        response = self.client.request("DELETE", self._blob_path(name))  # the marker, if any
        if response.status not in (202, 404):
            raise self._error(response, path)

    def _sign_sas(self, name: str, expiry: datetime, permission: str = "rl") -> str:
        from azure.storage.blob import generate_blob_sas

        return generate_blob_sas(
            account_name=self.credentials.account_name,
            container_name=self.root,
            blob_name=name,
            account_key=self.credentials.account_key,
            permission=permission,
            expiry=expiry,
        )

    def create_root(self) -> bool:
        response = self.client.request("PUT", self.client.path_for(self.container), query=[("restype", "container")])
        if response.status == 409 and response.error_code == "ContainerAlreadyExists":
            return False
        self._check(response)
        return True

    def delete_root(self) -> bool:
        """Delete the container; True if it existed."""
        response = self.client.request("DELETE", self.client.path_for(self.container), query=[("restype", "container")])
        if response.status == 404:
            return False
        self._check(response)
        return True


def _block_id(index: int) -> str:
    """Block ids must all have one length; the index alone makes a re-run reuse the same ids."""
    return base64.b64encode(f"{index:08d}".encode()).decode()


def _resolve_markers(items: Iterator[_Listed], *, keep_dirs: bool) -> Iterator[tuple[_Listed, bool]]:
    """(item, is_dir) for a listing, with directory markers recognised and each directory once.

    A zero-byte blob is a marker when its name is also a prefix. Neither Azure nor Azurite
    promises where a BlobPrefix sorts among the blobs of a page (Azurite sends all prefixes
    first, the SDK reorders them that way too), so zero-byte blobs wait in `pending` until the
    listing ends, and are files only if no directory of that name turned up. Memory grows with
    the number of directories and empty files, never with the number of files.
    """
    pending: dict[str, _Listed] = {}
    dir_names: set[str] = set()

    def directory(name: str, item: _Listed) -> Iterator[tuple[_Listed, bool]]:
        if name in dir_names:
            return
        dir_names.add(name)
        pending.pop(name, None)
        if keep_dirs:
            yield item, True

    for item in items:
        name = item.name.rstrip("/")
        if item.is_prefix or item.is_folder_marker or item.name.endswith("/"):
            yield from directory(name, item)
            continue
        if not keep_dirs:  # a flat listing: every parent of a blob is a directory
            parent = name.rpartition("/")[0]
            while parent and parent not in dir_names:
                dir_names.add(parent)
                pending.pop(parent, None)
                parent = parent.rpartition("/")[0]
        if item.size == 0:
            if name not in dir_names:
                pending[name] = item
        else:
            yield item, False
    for item in pending.values():
        yield item, False


def _element_name(element: ET.Element) -> str:
    name_element = element.find("Name")
    if name_element is None:
        return ""
    text = name_element.text or ""
    return unquote(text) if name_element.get("Encoded") == "true" else text


def _parse_blob(element: ET.Element) -> _Listed:
    properties = element.find("Properties")
    metadata = element.find("Metadata")

    def prop(tag: str) -> str | None:
        return properties.findtext(tag) if properties is not None else None

    md5_text = prop("Content-MD5")
    modified = prop("Last-Modified")
    is_marker = False
    if metadata is not None:
        for child in metadata:
            if child.tag.lower() == FOLDER_METADATA and (child.text or "").lower() == "true":
                is_marker = True
    return _Listed(
        name=_element_name(element),
        size=int(prop("Content-Length") or 0),
        last_modified=http_date(modified),
        content_md5=base64.b64decode(md5_text) if md5_text else None,
        content_type=prop("Content-Type") or None,
        etag=quoted_etag(prop("Etag")),
        is_folder_marker=is_marker,
    )


def _is_folder(headers: Mapping[str, str]) -> bool:
    return headers.get(f"x-ms-meta-{FOLDER_METADATA}", "").lower() == "true"
