"""upload_batch / download_batch against real stores: a folder, Azurite, and (test_transfer_faults.py)
a service that goes away or an upload killed with SIGKILL."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from batchai_cli.errors import NotFound, StorageError, UsageError
from batchai_cli.services import transfer
from batchai_cli.storage.blob import BlobStore
from batchai_cli.storage.credentials import parse_connection_string
from batchai_cli.storage.fileshare import FileShareStore
from batchai_cli.storage.local import LocalStore

TREE = {
    "a.txt": b"alpha\n",
    "b.py": b"print('b')\n",
    "sub/c.py": b"print('c')\n",
    "sub/deeper/d.json": b'{"d": 4}',
    "sub/deeper/e.bin": bytes(range(256)) * 40,
    "space dir/f g.txt": b"spaces",
    "empty.dat": b"",
}


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def stored(store, prefix: str = "") -> dict[str, bytes]:
    """{path: content} of everything below `prefix`, read back from the store."""
    return {entry.path: store.read(entry.path) for entry in store.walk(prefix)}


class Recorder:
    """A Reporter that keeps what it was told, so tests can check progress and the summary."""

    def __init__(self):
        self.started = None
        self.advanced = 0
        self.done = 0
        self.summary = None

    def start(self, files, total_bytes):
        self.started = (files, total_bytes)

    def advance(self, nbytes):
        self.advanced += nbytes

    def file_done(self, path):
        self.done += 1

    def finish(self, summary):
        self.summary = summary


@pytest.fixture(
    params=[
        "local",
        pytest.param("blob", marks=pytest.mark.integration),
        pytest.param("files", marks=pytest.mark.integration),
    ]
)
def store(request, tmp_path):
    if request.param == "local":
        root = tmp_path / "store"
        root.mkdir()
        return LocalStore(root)
    if request.param == "files":
        connection_string, share = request.getfixturevalue("azfiles_share")
        return FileShareStore(share, credentials=parse_connection_string(connection_string))
    azurite = request.getfixturevalue("azurite")
    container = request.getfixturevalue("azurite_container")
    return BlobStore(container, credentials=parse_connection_string(azurite.connection_string))


@pytest.fixture
def source(tmp_path):
    return make_tree(tmp_path / "source", TREE)


def test_upload_a_tree(store, source):
    recorder = Recorder()
    summary = transfer.upload_batch(store, source, reporter=recorder)
    assert stored(store) == TREE
    assert (summary["files"], summary["bytes"], summary["skipped"], summary["failed"]) == (
        len(TREE),
        sum(map(len, TREE.values())),
        0,
        0,
    )
    assert [r["path"] for r in summary["uploaded"]] == sorted(TREE)
    by_path = {r["path"]: r for r in summary["uploaded"]}
    assert by_path["sub/deeper/d.json"]["content_type"] == "application/json"
    assert by_path["sub/deeper/e.bin"]["content_type"] == "application/octet-stream"
    assert by_path["a.txt"]["url"] == store.url("a.txt")
    assert recorder.started == (len(TREE), sum(map(len, TREE.values())))
    assert (recorder.advanced, recorder.done) == (sum(map(len, TREE.values())), len(TREE))
    assert recorder.summary is summary
    if store.stores_md5:
        stored_md5s = {e.path: store.stat(e.path).content_md5 for e in store.walk("")}  # Files lists no MD5
        assert stored_md5s == {p: md5(d) for p, d in TREE.items()}
        assert store.stat("a.txt").content_type == "text/plain"
        assert by_path["a.txt"]["etag"] == store.stat("a.txt").etag


def test_destination_path_and_pattern(store, source):
    summary = transfer.upload_batch(store, source, destination_path="/data/v1/", pattern="*.py")
    assert stored(store) == {"data/v1/b.py": TREE["b.py"], "data/v1/sub/c.py": TREE["sub/c.py"]}
    assert summary["files"] == 2
    transfer.upload_batch(store, source, destination_path="data/v2", pattern="sub/deeper/*")
    assert sorted(stored(store, "data/v2")) == ["data/v2/sub/deeper/d.json", "data/v2/sub/deeper/e.bin"]


def test_dryrun_sends_nothing(store, source):
    summary = transfer.upload_batch(store, source, dryrun=True, pattern="*.txt")
    assert [r["path"] for r in summary["uploaded"]] == ["a.txt", "space dir/f g.txt"]
    assert [r["last_modified"] for r in summary["uploaded"]] == [None, None]
    assert (summary["dryrun"], summary["files"], summary["bytes"]) == (True, 2, 12)
    assert list(store.walk("")) == []


def test_nothing_to_upload(store, tmp_path, source):
    (tmp_path / "empty").mkdir()
    summary = transfer.upload_batch(store, tmp_path / "empty")
    assert (summary["files"], summary["uploaded"]) == (0, [])
    summary = transfer.upload_batch(store, source, pattern="*.nothing")
    assert (summary["files"], summary["uploaded"]) == (0, [])
    assert list(store.walk("")) == []


def test_a_missing_or_wrong_source(store, tmp_path, source):
    with pytest.raises(UsageError, match="does not exist"):
        transfer.upload_batch(store, tmp_path / "nope")
    with pytest.raises(UsageError, match="is not a folder"):
        transfer.upload_batch(store, source / "a.txt")
    with pytest.raises(UsageError, match="max-connections"):
        transfer.upload_batch(store, source, max_connections=0)


def test_existing_files_need_overwrite(store, source):
    store.write("a.txt", b"old")
    summary = transfer.upload_batch(store, source)
    assert store.read("a.txt") == b"old"
    assert summary["skipped_files"] == [{"path": "a.txt", "reason": "exists"}]
    assert (summary["files"], summary["skipped"]) == (len(TREE) - 1, 1)
    summary = transfer.upload_batch(store, source, overwrite=True)
    assert store.read("a.txt") == TREE["a.txt"]
    assert summary["files"] == len(TREE)


def test_skip_unchanged_uploads_only_what_changed(store, source):
    transfer.upload_batch(store, source)
    again = transfer.upload_batch(store, source, skip_unchanged=True)
    if not store.stores_md5:  # a folder keeps no MD5: everything counts as changed
        assert again["files"] == len(TREE)
        return
    assert (again["files"], again["bytes"], again["skipped"]) == (0, 0, len(TREE))
    (source / "sub/c.py").write_bytes(b"print('C')\n")  # same size, other bytes
    (source / "new.txt").write_bytes(b"new")
    third = transfer.upload_batch(store, source, skip_unchanged=True)
    assert [r["path"] for r in third["uploaded"]] == ["new.txt", "sub/c.py"]
    assert stored(store) == {**TREE, "sub/c.py": b"print('C')\n", "new.txt": b"new"}


def test_large_files_go_in_blocks(store, tmp_path):
    store.block_size = 64 * 1024
    if hasattr(store, "single_put_max"):
        store.single_put_max = 64 * 1024
    big = os.urandom(64 * 1024 * 5 + 17)
    files = {"big/one.bin": big, "big/two.bin": big[::-1], "small.txt": b"s"}
    source = make_tree(tmp_path / "src", files)
    recorder = Recorder()
    summary = transfer.upload_batch(store, source, max_connections=3, reporter=recorder)
    assert stored(store) == files
    assert recorder.advanced == sum(map(len, files.values()))
    if store.stores_md5:
        assert store.stat("big/one.bin").content_md5 == md5(big)
    assert summary["files"] == 3


@pytest.mark.integration
def test_a_missing_container(azurite, source):
    store = BlobStore("not-there-yet", credentials=parse_connection_string(azurite.connection_string))
    with pytest.raises(NotFound) as info:
        transfer.upload_batch(store, source)
    assert str(info.value) == (
        "The container 'not-there-yet' does not exist in storage account 'devstoreaccount1'. "
        "Create it with `batchai storage container create -n not-there-yet`, or add --create-container."
    )
    try:
        summary = transfer.upload_batch(store, source, create_destination=True)
        assert summary["files"] == len(TREE)
        assert stored(store) == TREE
    finally:
        store.delete_root()


@pytest.mark.integration
def test_skip_unchanged_lists_once_per_page_and_sends_nothing(azurite, azurite_container, tmp_path, caplog):
    files = {f"d{i // 40}/f{i:03d}.txt": f"file {i}".encode() for i in range(120)}
    source = make_tree(tmp_path / "src", files)
    store = BlobStore(azurite_container, credentials=parse_connection_string(azurite.connection_string))
    transfer.upload_batch(store, source)
    store.page_size = 50
    with caplog.at_level(logging.DEBUG, logger="batchai_cli.storage"):
        summary = transfer.upload_batch(store, source, skip_unchanged=True)
    requests = [r.getMessage().split(" ")[0:2] for r in caplog.records]
    assert (summary["files"], summary["bytes"], summary["skipped"]) == (0, 0, 120)
    # 120 blobs at 50 per page: three listing calls, and nothing else (the listing proves the container exists)
    assert [method for method, _ in requests] == ["GET"] * 3
    assert all("comp=list" in target for _, target in requests)


def test_download_a_tree(store, source, tmp_path):
    transfer.upload_batch(store, source, destination_path="ds")
    target = tmp_path / "out"
    recorder = Recorder()
    summary = transfer.download_batch(store, target, source_path="ds", reporter=recorder)
    assert {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()} == TREE
    assert [r["path"] for r in summary["downloaded"]] == sorted(f"ds/{p}" for p in TREE)
    assert (summary["files"], summary["bytes"]) == (len(TREE), sum(map(len, TREE.values())))
    assert recorder.advanced == sum(map(len, TREE.values()))
    only_py = transfer.download_batch(store, tmp_path / "py", source_path="ds", pattern="*.py")
    assert [r["path"] for r in only_py["downloaded"]] == ["ds/b.py", "ds/sub/c.py"]
    assert sorted(p.name for p in (tmp_path / "py").rglob("*.py")) == ["b.py", "c.py"]


def test_download_overwrite_and_skip_unchanged(store, source, tmp_path):
    transfer.upload_batch(store, source)
    target = make_tree(tmp_path / "out", {"a.txt": b"local edit"})
    with pytest.raises(StorageError, match="Local files already exist"):
        transfer.download_batch(store, target, overwrite=False)
    assert (target / "a.txt").read_bytes() == b"local edit"
    transfer.download_batch(store, target, overwrite=True)
    assert (target / "a.txt").read_bytes() == TREE["a.txt"]
    again = transfer.download_batch(store, target, skip_unchanged=True)
    if store.stores_md5:
        assert (again["files"], again["skipped"]) == (0, len(TREE))


def test_download_of_a_missing_source(store, tmp_path):
    with pytest.raises(NotFound):
        transfer.download_batch(store, tmp_path / "out", source_path="nothing/here")


def test_download_large_files_in_ranges(store, tmp_path):
    store.block_size = 64 * 1024
    big = os.urandom(64 * 1024 * 3 + 5)
    store.write("big.bin", big)
    summary = transfer.download_batch(store, tmp_path / "out", max_connections=4)
    assert (tmp_path / "out" / "big.bin").read_bytes() == big
    assert summary["bytes"] == len(big)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["big.bin"]


def test_create_container(store, tmp_path):
    if isinstance(store, LocalStore):
        fresh = LocalStore(tmp_path / "new-root")
    else:
        fresh = type(store)("fresh-container", credentials=store.credentials)
    try:
        assert transfer.create_container(fresh) == {"created": True}
        assert transfer.create_container(fresh) == {"created": False}
        with pytest.raises(Exception, match="already exists"):
            transfer.create_container(fresh, fail_on_exist=True)
    finally:
        if not isinstance(fresh, LocalStore):
            fresh.delete_root()
