"""`batchai storage blob|file list, show, download, delete, generate-sas, url` against Azurite and the
Azure Files emulator: az's options and JSON shape, paging, and what goes wrong."""

from __future__ import annotations

import urllib.request
import uuid

import pytest

from batchai_cli.storage import open_store
from batchai_cli.storage.credentials import parse_connection_string

pytestmark = pytest.mark.integration

NAMES = ["a.txt", "data/one.csv", "data/sub/three.csv", "data/two.csv", "zeta.bin"]


def _filled(service, monkeypatch, scheme: str):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", service.connection_string)
    for name in ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    root = f"t{uuid.uuid4().hex[:12]}"
    store = open_store(f"{scheme}://{root}", parse_connection_string(service.connection_string))
    store.create_root()
    for name in NAMES:
        store.write(name, name.encode())
    return root, store


@pytest.fixture
def container(azurite, monkeypatch):
    """A container on Azurite holding NAMES; the connection string in the environment."""
    return _filled(azurite, monkeypatch, "azureblob")


@pytest.fixture
def share(azfiles_emulator, monkeypatch):
    """A share on the Files emulator holding NAMES; the connection string in the environment."""
    return _filled(azfiles_emulator, monkeypatch, "azurefile")


def test_blob_list_has_azs_shape_prefix_and_paging(batchai, container):
    root, _store = container
    listed = batchai("storage", "blob", "list", "-c", root)
    assert listed.code == 0, listed.err
    blobs = listed.json()
    assert [b["name"] for b in blobs] == NAMES
    first = blobs[0]
    assert sorted(first) == [
        "container", "content", "deleted", "metadata", "name", "properties", "snapshot", "tags", "versionId"
    ]  # fmt: skip
    assert first["container"] == root
    assert first["properties"]["contentLength"] == len(b"a.txt")
    assert first["properties"]["lastModified"].endswith("+00:00")
    assert first["properties"]["etag"]
    prefixed = batchai("storage", "blob", "list", "-c", root, "--prefix", "data/", "--query", "[].name", "-o", "tsv")
    assert prefixed.out.split() == ["data/one.csv", "data/sub/three.csv", "data/two.csv"]
    # Pages: --num-results, then --marker from where the page ended.
    page = batchai("storage", "blob", "list", "-c", root, "--num-results", "2", "--show-next-marker")
    assert page.json() == [*blobs[:2], {"nextMarker": "data/one.csv"}]
    rest = batchai("storage", "blob", "list", "-c", root, "--num-results", "2", "--marker", "data/one.csv")
    assert [b["name"] for b in rest.json()] == ["data/sub/three.csv", "data/two.csv"]
    assert rest.err == "WARNING: Next Marker: data/two.csv (more results: give --marker data/two.csv)\n"
    every = batchai("storage", "blob", "list", "-c", root, "--num-results", "*", "--query", "length(@)")
    assert every.out.strip() == "5"


def test_blob_show_download_generate_sas_url_and_delete(batchai, container, tmp_path):
    root, store = container
    shown = batchai("storage", "blob", "show", "-c", root, "-n", "data/one.csv")
    assert shown.code == 0, shown.err
    assert shown.json()["name"] == "data/one.csv"
    assert shown.json()["properties"]["contentLength"] == len(b"data/one.csv")
    downloaded = batchai("storage", "blob", "download", "-c", root, "-n", "data/one.csv", "-f", str(tmp_path))
    assert downloaded.code == 0, downloaded.err
    assert (tmp_path / "one.csv").read_bytes() == b"data/one.csv"
    assert downloaded.json()["name"] == "data/one.csv"
    url = batchai("storage", "blob", "url", "-c", root, "-n", "data/one.csv", "-o", "tsv").out.strip()
    assert url == store.url("data/one.csv")
    token = batchai(
        "storage",
        "blob",
        "generate-sas",
        "-c",
        root,
        "-n",
        "data/one.csv",
        "--expiry",
        "2099-01-01T00:00Z",
        "-o",
        "tsv",
    ).out.strip()
    assert "sp=r&" in token and "se=2099-01-01" in token and "sig=" in token
    full = batchai("storage", "blob", "generate-sas", "-c", root, "-n", "data/one.csv", "--full-uri", "-o", "tsv")
    with urllib.request.urlopen(full.out.strip(), timeout=10) as response:  # the SAS really reads it
        assert response.read() == b"data/one.csv"
    deleted = batchai("storage", "blob", "delete", "-c", root, "-n", "data/one.csv")
    assert (deleted.code, deleted.out) == (0, "")
    assert not store.exists("data/one.csv")
    again = batchai("storage", "blob", "show", "-c", root, "-n", "data/one.csv")
    assert again.code == 3
    assert again.err == f"ERROR: The specified blob does not exist: {store.url('data/one.csv')}\n"
    assert batchai("storage", "blob", "delete", "-c", root, "-n", "data/one.csv").code == 3
    missing = batchai("storage", "blob", "list", "-c", "nosuchcontainer")
    assert missing.code == 3


def test_file_list_has_azs_shape_and_pages(batchai, share):
    root, _store = share
    top = batchai("storage", "file", "list", "-s", root)
    assert top.code == 0, top.err
    assert [(item["name"], item["type"]) for item in top.json()] == [
        ("a.txt", "file"),
        ("data", "dir"),
        ("zeta.bin", "file"),
    ]
    a_txt = top.json()[0]
    assert sorted(a_txt) == ["metadata", "name", "properties", "type"]
    assert a_txt["properties"]["contentLength"] == len(b"a.txt")
    inner = batchai("storage", "file", "list", "-s", root, "-p", "data", "--exclude-dir", "--query", "[].name")
    assert inner.json() == ["one.csv", "two.csv"]
    page = batchai("storage", "file", "list", "-s", root, "--num-results", "1", "--show-next-marker")
    assert page.json()[-1] == {"nextMarker": "a.txt"}
    assert batchai("storage", "file", "list", "-s", root, "-p", "nosuchdir").code == 3


def test_file_show_download_generate_sas_url_and_delete(batchai, share, tmp_path):
    root, store = share
    shown = batchai("storage", "file", "show", "-s", root, "-p", "data/two.csv")
    assert shown.code == 0, shown.err
    assert (shown.json()["name"], shown.json()["type"]) == ("two.csv", "file")
    target = tmp_path / "copy.csv"
    downloaded = batchai("storage", "file", "download", "-s", root, "-p", "data/two.csv", "--dest", str(target))
    assert downloaded.code == 0, downloaded.err
    assert target.read_bytes() == b"data/two.csv"
    url = batchai("storage", "file", "url", "-s", root, "-p", "data/two.csv", "-o", "tsv").out.strip()
    assert url == store.url("data/two.csv")
    full = batchai(
        "storage", "file", "generate-sas", "-s", root, "-p", "data/two.csv", "--permissions", "rl", "--full-uri"
    )
    assert full.code == 0, full.err
    with urllib.request.urlopen(full.json(), timeout=10) as response:
        assert response.read() == b"data/two.csv"
    bad = batchai("storage", "file", "generate-sas", "-s", root, "-p", "data/two.csv", "--permissions", "ra")
    assert (bad.code, bad.err) == (2, "ERROR: --permissions takes letters of 'rcwdl', not 'ra'.\n")
    assert batchai("storage", "file", "delete", "-s", root, "-p", "data/two.csv").code == 0
    assert not store.exists("data/two.csv")
    gone = batchai("storage", "file", "show", "-s", root, "-p", "data/two.csv")
    assert gone.code == 3
