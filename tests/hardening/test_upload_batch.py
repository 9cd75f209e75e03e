"""Items 6 and 8: upload-batch never sends a torn file with exit 0, never waits on a FIFO, and does
not follow links out of its source unless asked. Against a folder, Azurite and the Files emulator."""

from __future__ import annotations

import os
import threading

import pytest

from batchai_cli.errors import StorageError, UsageError
from batchai_cli.services import transfer
from tests.storage import test_transfer
from tests.storage.test_transfer import Recorder, make_tree, stored

store = test_transfer.store  # the fixture: a folder, Azurite Blob, the Files emulator

BIG = 3 * 1024 * 1024 + 17  # above every store's single-put size, so the chunked path is used too


class Rewriter(Recorder):
    """Rewrites `path` in place (same size, new bytes) from inside the transfer's own progress
    callbacks, the first `times` times the upload reports progress on it: a file changed mid-transfer."""

    def __init__(self, path, times):
        super().__init__()
        self.path, self.left = path, times
        self.lock = threading.Lock()

    def advance(self, nbytes):
        super().advance(nbytes)
        with self.lock:
            if self.left <= 0:
                return
            self.left -= 1
            with open(self.path, "r+b") as handle:  # in place, as the rewrite was
                first = handle.read(1)
                handle.seek(0)
                handle.write(bytes([(first[0] + 1) % 256]))


@pytest.mark.parametrize("size", [100, BIG])
def test_a_file_changed_during_its_upload_is_sent_again(store, tmp_path, size):
    source = make_tree(tmp_path / "src", {"model.bin": bytes(size), "other.txt": b"other"})
    rewriter = Rewriter(source / "model.bin", times=1)
    summary = transfer.upload_batch(store, source, reporter=rewriter, overwrite=True)
    assert summary["failed"] == 0
    assert stored(store) == {"model.bin": (source / "model.bin").read_bytes(), "other.txt": b"other"}
    assert stored(store)["model.bin"][:1] == b"\x01"


def test_a_file_that_keeps_changing_fails_by_name_and_leaves_no_torn_copy(store, tmp_path):
    source = make_tree(tmp_path / "src", {"log.txt": b"x" * 100, "ok.txt": b"fine"})
    rewriter = Rewriter(source / "log.txt", times=100)
    with pytest.raises(StorageError) as raised:
        transfer.upload_batch(store, source, reporter=rewriter)
    message = str(raised.value)
    assert message.startswith("1 of 2 files failed to upload")
    assert "  log.txt: the file changed while it was uploaded (3 tries: size, modification or change time" in message
    assert stored(store) == {"ok.txt": b"fine"}


def test_a_fifo_is_skipped_with_a_warning_not_waited_on(store, tmp_path, caplog_batchai):
    source = make_tree(tmp_path / "src", {"a.txt": b"a"})
    os.mkfifo(source / "pipe")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(summary=transfer.upload_batch(store, source)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # it waits on the FIFO: open it for writing so the upload can end
        with open(source / "pipe", "wb"):
            pass
        worker.join(timeout=30)
        pytest.fail("upload-batch waited on the FIFO")
    summary = result["summary"]
    assert stored(store) == {"a.txt": b"a"}
    assert summary["skipped_files"] == [{"path": "pipe", "reason": "not a regular file (a FIFO)"}]
    assert caplog_batchai == [("WARNING", "Skipped 'pipe': not a regular file (a FIFO).")]


def test_links_out_of_the_source_are_not_followed_unless_asked(store, tmp_path, caplog_batchai):
    outside = make_tree(tmp_path / "outside", {"shadow": b"root:secret", "dir/x.txt": b"x"})
    source = make_tree(tmp_path / "src", {"a.txt": b"a", "sub/b.txt": b"b"})
    (source / "shadow").symlink_to(outside / "shadow")
    (source / "outdir").symlink_to(outside / "dir")
    (source / "inner").symlink_to(source / "a.txt")
    (source / "sub" / "loop").symlink_to(source)  # a cycle, even with --follow-symlinks
    summary = transfer.upload_batch(store, source)
    assert stored(store) == {"a.txt": b"a", "inner": b"a", "sub/b.txt": b"b"}
    reason = "a link that leads out of the source (use --follow-symlinks)"
    assert sorted(s["path"] for s in summary["skipped_files"]) == ["outdir", "shadow"]
    assert ("WARNING", f"Skipped 'shadow': {reason}.") in caplog_batchai
    followed = transfer.upload_batch(store, source, destination_path="f", follow_symlinks=True)
    assert followed["failed"] == 0
    assert stored(store, "f") == {
        "f/a.txt": b"a",
        "f/inner": b"a",
        "f/sub/b.txt": b"b",
        "f/shadow": b"root:secret",
        "f/outdir/x.txt": b"x",
    }


def test_destination_path_may_not_climb(tmp_path):
    from batchai_cli.storage.local import LocalStore

    (tmp_path / "store").mkdir()
    source = make_tree(tmp_path / "src", {"a.txt": b"a"})
    with pytest.raises(UsageError, match=r"'\.\.' is not allowed in --destination-path: '\.\./\.\./x'"):
        transfer.upload_batch(LocalStore(tmp_path / "store"), source, destination_path="../../x")


@pytest.fixture
def caplog_batchai():
    from batchai_cli import log

    messages: list[tuple[str, str]] = []
    previous = dict(log._state)
    log.configure(log.WARNING, lambda level, text: messages.append((level, text)))
    yield messages
    log._state.update(previous)


def test_skip_unchanged_downloads_a_same_size_edit_where_the_source_keeps_no_md5(tmp_path):
    """Item 10: a local-folder source keeps no MD5; an edited copy of the same size, newer than the
    source, was kept as "unchanged"."""
    from batchai_cli.storage.local import LocalStore

    source = LocalStore(make_tree(tmp_path / "store", {"m/model.json": b'{"w": 1}', "m/same.txt": b"same"}))
    target = tmp_path / "copy"
    transfer.download_batch(source, target)
    (target / "m" / "model.json").write_bytes(b'{"w": 9}')  # same size, newer
    summary = transfer.download_batch(source, target, skip_unchanged=True)
    assert (target / "m" / "model.json").read_bytes() == b'{"w": 1}'
    assert [record["path"] for record in summary["downloaded"]] == ["m/model.json"]
    assert summary["skipped_files"] == [{"path": "m/same.txt", "reason": "unchanged"}]
