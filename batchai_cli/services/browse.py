"""Looking at storage outside a job: `storage blob|file list, show, download, delete, generate-sas, url`.

Results have az's JSON shape (`az storage blob list` and `az storage file list`), with what the
Store contract knows filled in and the rest null, as az shows fields the service did not return.
Listing pages as az does: at most `num_results` items (az's default 5000), and a marker to go on
from; here the marker is the name of the last item returned, so it is readable and stable.
"""

from __future__ import annotations

import base64
import posixpath
from datetime import datetime

from batchai_cli.errors import NotFound, UsageError
from batchai_cli.storage.base import Entry, Store, clean_path

DEFAULT_NUM_RESULTS = 5000


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _content_settings(entry: Entry) -> dict:
    return {
        "cacheControl": None,
        "contentDisposition": None,
        "contentEncoding": None,
        "contentLanguage": None,
        "contentMd5": base64.b64encode(entry.content_md5).decode() if entry.content_md5 else None,
        "contentType": entry.content_type,
    }


def blob_dict(store: Store, entry: Entry) -> dict:
    """One blob as `az storage blob list/show` printed it."""
    return {
        "container": store.root,
        "content": "",
        "deleted": None,
        "metadata": {},
        "name": entry.path,
        "properties": {
            "blobTier": None,
            "blobType": None,
            "contentLength": entry.size,
            "contentRange": None,
            "contentSettings": _content_settings(entry),
            "creationTime": None,
            "etag": entry.etag,
            "lastModified": _iso(entry.last_modified),
        },
        "snapshot": None,
        "tags": None,
        "versionId": None,
    }


def file_dict(entry: Entry) -> dict:
    """One file or directory as `az storage file list/show` printed it."""
    if entry.is_dir:
        properties = {"etag": entry.etag, "lastModified": _iso(entry.last_modified)}
    else:
        properties = {
            "contentLength": entry.size,
            "contentRange": None,
            "contentSettings": _content_settings(entry),
            "etag": entry.etag,
            "lastModified": _iso(entry.last_modified),
        }
    return {"metadata": None, "name": entry.name, "properties": properties, "type": "dir" if entry.is_dir else "file"}


def _page(items: list, key, num_results: int | None, marker: str | None) -> tuple[list, str | None]:
    """Items after `marker` (a name), at most num_results (None: all), and the next marker."""
    if num_results is not None and num_results < 1:
        raise UsageError("--num-results must be 1 or more, or * for all.")
    if marker:
        items = [item for item in items if key(item) > marker]
    if num_results is None or len(items) <= num_results:
        return items, None
    page = items[:num_results]
    return page, key(page[-1])


def _path(name: str, what: str) -> str:
    try:
        path = clean_path(name or "")
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None
    return path


def list_blobs(
    store: Store, *, prefix: str = "", num_results: int | None = DEFAULT_NUM_RESULTS, marker: str | None = None
) -> tuple[list[dict], str | None]:
    """The blobs whose names start with `prefix`, in name order; (page, next marker or None).

    NotFound when the container does not exist."""
    folder = posixpath.dirname(prefix.lstrip("/"))
    try:
        entries = sorted(
            (e for e in store.walk(folder, missing_ok=True) if e.path.startswith(prefix.lstrip("/"))),
            key=lambda e: e.path,
        )
    except FileNotFoundError:
        raise NotFound(f"The specified container does not exist: {store.url()}") from None
    page, next_marker = _page(entries, lambda e: e.path, num_results, marker)
    return [blob_dict(store, e) for e in page], next_marker


def list_files(
    store: Store,
    *,
    path: str = "",
    num_results: int | None = DEFAULT_NUM_RESULTS,
    marker: str | None = None,
    exclude_dir: bool = False,
) -> tuple[list[dict], str | None]:
    """The files and directories in the share's directory `path`, in name order; (page, next marker).

    NotFound when the share or the directory does not exist."""
    folder = _path(path, "--path")
    try:
        entries = sorted(store.list_dir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"The specified resource does not exist: {store.url(folder)}") from None
    if exclude_dir:
        entries = [e for e in entries if not e.is_dir]
    page, next_marker = _page(entries, lambda e: e.name, num_results, marker)
    return [file_dict(e) for e in page], next_marker


def _stat(store: Store, path: str, what: str) -> Entry:
    try:
        entry = store.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"The specified {what} does not exist: {store.url(path)}") from None
    return entry


def show_blob(store: Store, name: str) -> dict:
    path = _path(name, "--name")
    entry = _stat(store, path, "blob")
    if entry.is_dir:
        raise NotFound(f"The specified blob does not exist: {store.url(path)} (it is a prefix of other blobs).")
    return blob_dict(store, entry)


def show_file(store: Store, path: str) -> dict:
    entry = _stat(store, _path(path, "--path"), "resource")
    return file_dict(entry)


def download(store: Store, path: str, local_path: str, *, kind: str) -> dict:
    """Download one blob or file to `local_path` (a folder: into it, under its own name); its
    properties as show gives them."""
    import os

    path = _path(path, "--name" if kind == "blob" else "--path")
    entry = _stat(store, path, "blob" if kind == "blob" else "resource")
    if entry.is_dir:
        raise UsageError(f"{store.url(path)} is a directory.", hint="Use download-batch for a whole directory.")
    if os.path.isdir(local_path):
        local_path = os.path.join(local_path, entry.name)
    store.download_file(path, local_path)
    return blob_dict(store, entry) if kind == "blob" else file_dict(entry)


def delete(store: Store, path: str, *, kind: str) -> None:
    path = _path(path, "--name" if kind == "blob" else "--path")
    if not path:
        raise UsageError("Give the blob's --name." if kind == "blob" else "Give the file's --path.")
    try:
        store.delete(path)
    except FileNotFoundError:
        what = "blob" if kind == "blob" else "resource"
        raise NotFound(f"The specified {what} does not exist: {store.url(path)}") from None
    except IsADirectoryError:
        raise UsageError(f"{store.url(path)} is a directory, which delete does not remove.") from None


def generate_sas(store, path: str, *, permissions: str, expiry: datetime, full_uri: bool, kind: str) -> str:
    """A SAS token for one blob or file (or its full URL with the token), as az printed it."""
    path = _path(path, "--name" if kind == "blob" else "--path")
    allowed = "racwdl" if kind == "blob" else "rcwdl"
    if not permissions or any(letter not in allowed for letter in permissions):
        raise UsageError(f"--permissions takes letters of '{allowed}', not '{permissions}'.")
    token = store.sign_sas(path, permissions=permissions, expiry=expiry)
    return f"{store.url(path)}?{token}" if full_uri else token
