"""The Store contract suite: the same tests for every backend (fsspec's abstract tests, rclone's fstests).

A backend's test module subclasses StoreContract and provides two fixtures:
- `store`: a Store whose root exists and is empty;
- `missing_store`: a Store whose root (folder, container, share) does not exist yet.
The class is not collected by itself (no Test prefix).
"""

from __future__ import annotations

import hashlib
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from batchai_cli.errors import StorageError
from batchai_cli.storage.base import Entry, Store

DATA = b"0123456789abcdefghij"


def md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def listing(entries) -> dict[str, tuple[bool, int]]:
    """{path: (is_dir, size)} of an iterator of entries, for whole-result comparisons."""
    return {e.path: (e.is_dir, e.size) for e in entries}


def assert_recent(moment: datetime | None) -> None:
    assert moment is not None and moment.tzinfo is not None
    assert abs(datetime.now(timezone.utc) - moment) < timedelta(minutes=5)


class StoreContract:
    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError

    @pytest.fixture
    def missing_store(self) -> Store:
        raise NotImplementedError

    # -- write / read -------------------------------------------------------------------------

    def test_write_then_read_whole_and_ranges(self, store):
        store.write("f.bin", DATA)
        assert store.read("f.bin") == DATA
        assert store.read_range("f.bin", 0, 5) == b"01234"
        assert store.read_range("f.bin", 10) == b"abcdefghij"
        assert store.read_range("f.bin", 15, 100) == b"fghij"
        assert store.read_range("f.bin", 19, 1) == b"j"

    def test_read_at_or_after_the_end_is_empty(self, store):
        store.write("f.bin", DATA)
        assert store.read_range("f.bin", len(DATA)) == b""
        assert store.read_range("f.bin", len(DATA) + 100, 10) == b""
        assert store.read_range("f.bin", 3, 0) == b""

    def test_empty_file(self, store):
        entry = store.write("empty.txt", b"")
        assert entry.size == 0 and not entry.is_dir
        assert store.read("empty.txt") == b""
        assert store.stat("empty.txt").size == 0
        assert listing(store.list_dir("")) == {"empty.txt": (False, 0)}

    def test_write_returns_the_stored_entry(self, store):
        entry = store.write("d/e.txt", b"hello", content_type="text/plain")
        assert (entry.name, entry.path, entry.is_dir, entry.size) == ("e.txt", "d/e.txt", False, 5)
        assert_recent(entry.last_modified)
        if store.stores_md5:
            assert entry.content_md5 == md5(b"hello")
            assert entry.etag

    def test_stat_of_a_file(self, store):
        store.write("dir/file.txt", DATA, content_type="text/plain")
        entry = store.stat("dir/file.txt")
        assert (entry.name, entry.path, entry.is_dir, entry.size) == ("file.txt", "dir/file.txt", False, len(DATA))
        assert_recent(entry.last_modified)
        if store.stores_md5:
            assert entry.content_md5 == md5(DATA)
            assert entry.content_type == "text/plain"

    def test_stat_of_a_directory_and_the_root(self, store):
        store.write("dir/sub/file.txt", DATA)
        assert store.stat("dir").is_dir
        assert store.stat("dir/sub").is_dir
        assert (store.stat("dir/sub").name, store.stat("dir/sub").path) == ("sub", "dir/sub")
        root = store.stat("")
        assert root.is_dir and root.path == ""

    def test_overwrite_replaces(self, store):
        store.write("f.txt", b"first version")
        store.write("f.txt", b"second")
        assert store.read("f.txt") == b"second"
        assert store.stat("f.txt").size == 6
        if store.stores_md5:
            assert store.stat("f.txt").content_md5 == md5(b"second")

    def test_no_overwrite_refuses_and_keeps_the_file(self, store):
        store.write("f.txt", b"keep me")
        with pytest.raises(FileExistsError):
            store.write("f.txt", b"lost", overwrite=False)
        assert store.read("f.txt") == b"keep me"
        store.write("new.txt", b"fresh", overwrite=False)
        assert store.read("new.txt") == b"fresh"

    def test_content_md5_is_checked(self, store):
        store.write("ok.txt", DATA, content_md5=md5(DATA))
        with pytest.raises(StorageError, match="Md5Mismatch"):
            store.write("bad.txt", DATA, content_md5=md5(b"something else"))
        assert not store.exists("bad.txt")

    def test_write_to_the_root_is_refused(self, store):
        with pytest.raises(IsADirectoryError):
            store.write("", DATA)

    def test_names_with_spaces_unicode_and_url_characters(self, store):
        name = "dir with space/ünï cödé+%20#&=;@!$'(),~.txt"
        store.write(name, DATA)
        assert store.read(name) == DATA
        assert store.stat(name).name == "ünï cödé+%20#&=;@!$'(),~.txt"
        assert listing(store.list_dir("dir with space")) == {name: (False, len(DATA))}
        assert [e.path for e in store.walk("")] == [name]

    # -- missing things -----------------------------------------------------------------------

    def test_missing_file_errors(self, store):
        with pytest.raises(FileNotFoundError):
            store.stat("nope.txt")
        with pytest.raises(FileNotFoundError):
            store.read("nope.txt")
        with pytest.raises(FileNotFoundError):
            store.read_range("nope/deeper.txt", 5, 5)
        with pytest.raises(FileNotFoundError):
            store.delete("nope.txt")
        with pytest.raises(FileNotFoundError):
            list(store.list_dir("nope"))
        with pytest.raises(FileNotFoundError):
            list(store.walk("nope"))
        assert not store.exists("nope.txt")
        assert not store.exists("nope/deeper")

    def test_reading_a_directory(self, store):
        store.write("dir/file.txt", DATA)
        with pytest.raises(IsADirectoryError):
            store.read("dir")

    def test_listing_a_file(self, store):
        store.write("dir/file.txt", DATA)
        with pytest.raises(NotADirectoryError):
            list(store.list_dir("dir/file.txt"))
        with pytest.raises(NotADirectoryError):
            list(store.walk("dir/file.txt"))

    def test_missing_root(self, missing_store):
        with pytest.raises(FileNotFoundError):
            missing_store.stat("")
        with pytest.raises(FileNotFoundError):
            list(missing_store.list_dir(""))
        with pytest.raises(FileNotFoundError):
            list(missing_store.walk(""))
        assert not missing_store.exists("")
        assert missing_store.create_root() is True
        assert missing_store.create_root() is False
        assert list(missing_store.list_dir("")) == []
        assert list(missing_store.walk("")) == []
        assert missing_store.stat("").is_dir

    # -- paths ----------------------------------------------------------------------------------

    @pytest.mark.parametrize("bad", ["..", "../x", "a/../../b", "a/..", "/../etc/passwd"])
    def test_dot_dot_is_refused(self, store, bad):
        for call in (
            lambda: store.stat(bad),
            lambda: store.read(bad),
            lambda: store.write(bad, DATA),
            lambda: store.append(bad, DATA, 0),
            lambda: store.makedirs(bad),
            lambda: store.delete(bad),
            lambda: list(store.list_dir(bad)),
            lambda: list(store.walk(bad)),
            lambda: store.download_url(bad),
        ):
            with pytest.raises(ValueError):
                call()

    def test_leading_and_doubled_slashes_are_the_same_path(self, store):
        store.write("/a//b/./c.txt", DATA)
        assert store.read("a/b/c.txt") == DATA
        assert store.stat("a/b/c.txt/").path == "a/b/c.txt"
        assert listing(store.list_dir("/a/")) == {"a/b": (True, 0)}

    # -- listing ----------------------------------------------------------------------------------

    def test_list_dir_is_one_level(self, store):
        store.write("top.txt", b"1")
        store.write("a/one.txt", b"22")
        store.write("a/b/two.txt", b"333")
        store.write("a/bc", b"4444")
        store.write("a/b.txt", b"55555")
        store.write("ab/three.txt", b"666666")
        assert listing(store.list_dir("")) == {"top.txt": (False, 1), "a": (True, 0), "ab": (True, 0)}
        assert listing(store.list_dir("a")) == {
            "a/one.txt": (False, 2),
            "a/b": (True, 0),
            "a/bc": (False, 4),
            "a/b.txt": (False, 5),
        }
        assert listing(store.list_dir("a/b")) == {"a/b/two.txt": (False, 3)}
        names = {e.path: e.name for e in store.list_dir("a")}
        assert names == {"a/one.txt": "one.txt", "a/b": "b", "a/bc": "bc", "a/b.txt": "b.txt"}

    def test_list_dir_entries_carry_metadata(self, store):
        store.write("f.txt", DATA, content_type="text/plain")
        (entry,) = list(store.list_dir(""))
        assert (entry.name, entry.path, entry.is_dir, entry.size) == ("f.txt", "f.txt", False, len(DATA))
        assert_recent(entry.last_modified)
        if store.stores_md5 and entry.content_md5 is not None:
            assert entry.content_md5 == md5(DATA)

    def test_list_dir_pages(self, store):
        if hasattr(store, "page_size"):
            store.page_size = 3
        for i in range(11):
            store.write(f"many/{i:02d}.txt", b"x" * i)
        assert listing(store.list_dir("many")) == {f"many/{i:02d}.txt": (False, i) for i in range(11)}
        assert listing(store.walk("many")) == {f"many/{i:02d}.txt": (False, i) for i in range(11)}

    def test_walk_lists_every_file_below(self, store):
        store.write("top.txt", b"1")
        store.write("a/one.txt", b"22")
        store.write("a/b/two.txt", b"333")
        store.write("a/b/c/d/deep.txt", b"4444")
        store.write("ab/three.txt", b"55555")
        store.makedirs("a/empty/dir")
        expected = {
            "top.txt": (False, 1),
            "a/one.txt": (False, 2),
            "a/b/two.txt": (False, 3),
            "a/b/c/d/deep.txt": (False, 4),
            "ab/three.txt": (False, 5),
        }
        assert listing(store.walk("")) == expected
        assert listing(store.walk("a/b")) == {"a/b/two.txt": (False, 3), "a/b/c/d/deep.txt": (False, 4)}
        assert listing(store.walk("a/empty")) == {}
        if store.stores_md5:
            md5s = {e.path: e.content_md5 for e in store.walk("a/b")}
            assert md5s["a/b/two.txt"] in (md5(b"333"), None)
            full = store.stat("a/b/two.txt")
            assert full.content_md5 == md5(b"333")

    def test_walk_missing_ok(self, store, missing_store):
        store.write("d/f.txt", DATA)
        assert list(store.walk("nope/deeper", missing_ok=True)) == []
        assert list(store.walk("d/f.txt", missing_ok=True)) == []
        assert listing(store.walk("d", missing_ok=True)) == {"d/f.txt": (False, len(DATA))}
        with pytest.raises(FileNotFoundError):
            list(missing_store.walk("any/path", missing_ok=True))

    # -- directories ----------------------------------------------------------------------------

    def test_makedirs_makes_an_empty_directory(self, store):
        store.makedirs("x/y/z")
        assert store.exists("x/y/z")
        assert store.stat("x/y/z").is_dir
        assert store.stat("x").is_dir
        assert list(store.list_dir("x/y/z")) == []
        assert listing(store.list_dir("x/y")) == {"x/y/z": (True, 0)}
        assert listing(store.list_dir("")) == {"x": (True, 0)}
        store.makedirs("x/y/z")  # again: nothing happens
        store.write("x/y/z/f.txt", DATA)
        assert listing(store.list_dir("x/y/z")) == {"x/y/z/f.txt": (False, len(DATA))}
        assert listing(store.list_dir("x/y")) == {"x/y/z": (True, 0)}

    def test_makedirs_over_a_file(self, store):
        store.write("f.txt", DATA)
        with pytest.raises(FileExistsError):
            store.makedirs("f.txt")
        assert store.read("f.txt") == DATA

    def test_makedirs_of_an_existing_implicit_directory(self, store):
        store.write("d/f.txt", DATA)
        store.makedirs("d")
        assert listing(store.list_dir("")) == {"d": (True, 0)}
        assert listing(store.walk("")) == {"d/f.txt": (False, len(DATA))}

    # -- delete ---------------------------------------------------------------------------------

    def test_delete_a_file(self, store):
        store.write("d/f.txt", DATA)
        store.write("d/keep.txt", DATA)
        store.delete("d/f.txt")
        assert not store.exists("d/f.txt")
        assert listing(store.list_dir("d")) == {"d/keep.txt": (False, len(DATA))}

    def test_delete_a_directory_needs_recursive(self, store):
        store.write("d/f.txt", DATA)
        store.write("d/sub/g.txt", DATA)
        store.write("dd/h.txt", DATA)
        store.write("d.txt", DATA)
        with pytest.raises(IsADirectoryError):
            store.delete("d")
        assert store.read("d/sub/g.txt") == DATA
        store.delete("d", recursive=True)
        assert not store.exists("d")
        assert not store.exists("d/sub/g.txt")
        assert listing(store.walk("")) == {"dd/h.txt": (False, len(DATA)), "d.txt": (False, len(DATA))}

    def test_delete_an_empty_directory(self, store):
        store.makedirs("empty")
        store.delete("empty", recursive=True)
        assert not store.exists("empty")
        assert list(store.list_dir("")) == []

    def test_delete_the_root_is_refused(self, store):
        with pytest.raises(ValueError):
            store.delete("", recursive=True)

    # -- append ---------------------------------------------------------------------------------

    def test_append_creates_and_grows(self, store):
        assert store.append("logs/out.txt", b"line 1\n", 0) == 7
        assert store.append("logs/out.txt", b"line 2\n", 7) == 14
        assert store.append("logs/out.txt", b"", 14) == 14
        assert store.read("logs/out.txt") == b"line 1\nline 2\n"
        assert store.stat("logs/out.txt").size == 14
        assert store.read_range("logs/out.txt", 7) == b"line 2\n"

    def test_append_retry_of_the_same_bytes_is_safe(self, store):
        store.append("log.txt", b"abc", 0)
        store.append("log.txt", b"def", 3)
        assert store.append("log.txt", b"def", 3) == 6
        with pytest.raises(StorageError):  # a stale retry, after a later append landed
            store.append("log.txt", b"abc", 0)
        assert store.read("log.txt") == b"abcdef"

    def test_append_at_the_wrong_offset_is_refused(self, store):
        store.append("log.txt", b"abcdef", 0)
        with pytest.raises(StorageError):
            store.append("log.txt", b"xyz", 3)
        with pytest.raises(StorageError):
            store.append("log.txt", b"xyz", 10)
        with pytest.raises(StorageError):
            store.append("log.txt", b"xyz", 0)
        assert store.read("log.txt") == b"abcdef"

    def test_append_to_a_missing_file_at_an_offset(self, store):
        with pytest.raises(FileNotFoundError):
            store.append("missing.txt", b"x", 5)
        assert not store.exists("missing.txt")

    def test_append_large_chunks(self, store):
        first = bytes(range(256)) * (5 * 4096)  # 5 MiB: more than one Append Block
        second = b"tail" * 1000
        assert store.append("big.log", first, 0) == len(first)
        assert store.append("big.log", second, len(first)) == len(first) + len(second)
        assert store.read("big.log") == first + second

    def test_append_shows_in_listings(self, store):
        store.append("logs/stdout.txt", b"hello\n", 0)
        assert listing(store.list_dir("logs")) == {"logs/stdout.txt": (False, 6)}
        assert listing(store.walk("")) == {"logs/stdout.txt": (False, 6)}

    # -- files: upload / download -----------------------------------------------------------------

    def test_upload_and_download_a_multi_block_file(self, store, tmp_path):
        store.block_size = 64 * 1024
        if hasattr(store, "single_put_max"):
            store.single_put_max = 100 * 1024
        data = bytes(range(256)) * 1500 + b"odd tail"  # 384 KiB + 8: 7 blocks, the last short
        source = tmp_path / "source.bin"
        source.write_bytes(data)
        sent: list[int] = []
        lock = threading.Lock()

        def progress(n: int) -> None:
            with lock:
                sent.append(n)

        entry = store.upload_file("up/source.bin", source, content_type="application/x-test", progress=progress)
        assert sum(sent) == len(data)
        assert entry.size == len(data)
        assert store.read("up/source.bin") == data
        if store.stores_md5:
            assert entry.content_md5 == md5(data)
            assert store.stat("up/source.bin").content_md5 == md5(data)
            assert store.stat("up/source.bin").content_type == "application/x-test"
        received: list[int] = []
        target = tmp_path / "out" / "copy.bin"
        store.download_file("up/source.bin", target, progress=lambda n: received.append(n))
        assert target.read_bytes() == data
        assert sum(received) == len(data)
        assert sorted(p.name for p in target.parent.iterdir()) == ["copy.bin"]

    def test_upload_a_small_file(self, store, tmp_path):
        source = tmp_path / "small.txt"
        source.write_bytes(DATA)
        entry = store.upload_file("small.txt", source)
        assert entry.size == len(DATA)
        assert store.read("small.txt") == DATA
        if store.stores_md5:
            assert store.stat("small.txt").content_md5 == md5(DATA)

    def test_download_errors_leave_nothing(self, store, tmp_path):
        store.write("d/f.txt", DATA)
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        with pytest.raises(FileNotFoundError):
            store.download_file("missing.txt", downloads / "x.txt")
        with pytest.raises(IsADirectoryError):
            store.download_file("d", downloads / "y.txt")
        assert list(downloads.iterdir()) == []

    def test_download_an_empty_file(self, store, tmp_path):
        store.write("empty", b"")
        store.download_file("empty", tmp_path / "downloads" / "empty")
        assert (tmp_path / "downloads" / "empty").read_bytes() == b""

    def test_upload_of_a_missing_local_file(self, store, tmp_path):
        with pytest.raises(FileNotFoundError):
            store.upload_file("x.txt", tmp_path / "nope.txt")

    # -- concurrency ------------------------------------------------------------------------------

    def test_many_threads_share_one_store(self, store):
        payloads = {f"par/{i:03d}.bin": bytes([i]) * (i * 37 + 1) for i in range(40)}
        with ThreadPoolExecutor(8) as pool:
            entries = list(pool.map(lambda kv: store.write(kv[0], kv[1]), payloads.items()))
        assert all(isinstance(e, Entry) for e in entries)
        assert listing(store.walk("par")) == {p: (False, len(d)) for p, d in payloads.items()}
        with ThreadPoolExecutor(8) as pool:
            assert dict(zip(payloads, pool.map(store.read, payloads), strict=True)) == payloads

    # -- download URLs ----------------------------------------------------------------------------

    def test_download_url_reads_the_file(self, store):
        store.write("dir/file name.txt", DATA)
        url = store.download_url("dir/file name.txt")
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == DATA

    def test_download_url_expiry(self, store):
        store.write("f.txt", DATA)
        url = store.download_url("f.txt", expiry_minutes=90)
        parts = urlsplit(url)
        if parts.scheme == "file":
            return
        query = parse_qs(parts.query)
        if "se" in query and store.credentials.kind == "key":
            assert query["sp"] == ["rl"]
            expiry = datetime.strptime(query["se"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            assert abs(expiry - (datetime.now(timezone.utc) + timedelta(minutes=90))) < timedelta(minutes=2)
