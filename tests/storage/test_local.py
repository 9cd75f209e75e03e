"""The Store contract on a local folder, plus what only a folder does."""

from __future__ import annotations

import os

import pytest

from batchai_cli.storage.local import LocalStore
from tests.storage.contract import DATA, StoreContract, listing


class TestLocalStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        root = tmp_path / "root"
        root.mkdir()
        return LocalStore(root)

    @pytest.fixture
    def missing_store(self, tmp_path):
        return LocalStore(tmp_path / "not" / "yet")


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    store = LocalStore(tmp_path)
    store.write("a/f.txt", DATA)
    store.write("a/f.txt", DATA * 2)
    store.write("a/f.txt", b"x", overwrite=True)
    assert sorted(os.listdir(tmp_path / "a")) == ["f.txt"]


def test_a_half_written_temporary_file_is_not_listed(tmp_path):
    store = LocalStore(tmp_path)
    store.write("a/f.txt", DATA)
    (tmp_path / "a" / ".g.txt.k2j3h4.batchai-tmp").write_bytes(b"partial")
    assert listing(store.list_dir("a")) == {"a/f.txt": (False, len(DATA))}
    assert listing(store.walk("")) == {"a/f.txt": (False, len(DATA))}


def test_write_over_a_directory(tmp_path):
    store = LocalStore(tmp_path)
    store.makedirs("d")
    with pytest.raises(IsADirectoryError):
        store.write("d", DATA)


def test_download_url_is_a_file_url(tmp_path):
    store = LocalStore(tmp_path)
    store.write("x y.txt", DATA)
    assert store.download_url("x y.txt") == (tmp_path / "x y.txt").as_uri()
    assert store.url("") == tmp_path.as_uri()
