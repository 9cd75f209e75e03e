"""`batchai storage`: whole outputs, messages and exit codes against Azurite (and a local folder)."""

from __future__ import annotations

import json
import re

import pytest

from batchai_cli.storage.blob import BlobStore
from batchai_cli.storage.credentials import parse_connection_string
from tests.helpers import normalize

pytestmark = pytest.mark.integration

ETAG = re.compile(r'\\"0x[0-9A-F]+\\"')
SECONDS = re.compile(r"in \d+\.\d\d s")


def clean(text: str) -> str:
    return SECONDS.sub("in <S> s", ETAG.sub("<ETAG>", normalize(text)))


@pytest.fixture
def account(azurite, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    for name in ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return azurite


@pytest.fixture
def source(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_text("hello\n")
    (tmp_path / "src" / "sub" / "b.json").write_text("{}\n")
    return tmp_path / "src"


def test_upload_batch_prints_azs_json(batchai, account, azurite_container, source):
    result = batchai("storage", "blob", "upload-batch", "-s", source, "-d", azurite_container)
    assert result.code == 0, result.err
    base = f"{account.blob_endpoint}/{azurite_container}"
    assert clean(result.out) == (
        "[\n"
        "  {\n"
        f'    "Blob": "{base}/a.txt",\n'
        '    "Last Modified": "<TIME>",\n'
        '    "Type": "text/plain",\n'
        '    "eTag": "<ETAG>"\n'
        "  },\n"
        "  {\n"
        f'    "Blob": "{base}/sub/b.json",\n'
        '    "Last Modified": "<TIME>",\n'
        '    "Type": "application/json",\n'
        '    "eTag": "<ETAG>"\n'
        "  }\n"
        "]\n"
    )
    assert clean(result.err) == "Uploaded 2 files (9 bytes) in <S> s; skipped 0, failed 0.\n"
    store = BlobStore(azurite_container, credentials=parse_connection_string(account.connection_string))
    assert store.read("sub/b.json") == b"{}\n"


def test_existing_blobs_skip_unchanged_and_overwrite(batchai, account, azurite_container, source):
    upload = ("storage", "blob", "upload-batch", "-s", source, "-d", azurite_container)
    batchai(*upload)
    again = batchai(*upload)
    assert (again.code, again.out) == (0, "[]\n")
    assert clean(again.err) == (
        "WARNING: 2 file(s) already exist and were not uploaded; use --overwrite or --skip-unchanged.\n"
        "Uploaded 0 files (0 bytes) in <S> s; skipped 2, failed 0.\n"
    )
    unchanged = batchai(*upload, "--skip-unchanged")
    assert (unchanged.code, unchanged.out) == (0, "[]\n")
    assert clean(unchanged.err) == "Uploaded 0 files (0 bytes) in <S> s; skipped 2, failed 0.\n"
    (source / "a.txt").write_text("HELLO\n")
    changed = batchai(*upload, "--skip-unchanged", "--query", "[].Blob", "-o", "tsv")
    assert changed.out == f"{account.blob_endpoint}/{azurite_container}/a.txt\n"
    overwrite = batchai(*upload, "--overwrite", "--query", "length(@)")
    assert overwrite.out == "2\n"


def test_dryrun_destination_path_and_pattern(batchai, account, azurite_container, source):
    result = batchai(
        "storage", "blob", "upload-batch", "-s", source, "-d", f"{azurite_container}/data",
        "--destination-path", "v1", "--pattern", "*.json", "--dryrun",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert json.loads(result.out) == [
        {
            "Blob": f"{account.blob_endpoint}/{azurite_container}/data/v1/sub/b.json",
            "Last Modified": None,
            "Type": "application/json",
            "eTag": None,
        }
    ]
    assert result.err == "Dry run: 1 file (3 bytes) would be uploaded; nothing was sent.\n"


def test_download_batch(batchai, account, azurite_container, source, tmp_path):
    batchai("storage", "blob", "upload-batch", "-s", source, "-d", azurite_container)
    target = tmp_path / "down"
    result = batchai("storage", "blob", "download-batch", "-s", azurite_container, "-d", target, "-o", "tsv")
    assert result.code == 0, result.err
    assert result.out == "a.txt\nsub/b.json\n"
    assert clean(result.err) == "Downloaded 2 files (9 bytes) in <S> s; skipped 0, failed 0.\n"
    assert (target / "sub" / "b.json").read_text() == "{}\n"
    refused = batchai("storage", "blob", "download-batch", "-s", azurite_container, "-d", target)
    assert (refused.code, refused.out) == (1, "")
    assert refused.err.startswith("ERROR: Local files already exist: ")
    assert refused.err.endswith(". Add --overwrite to replace them.\n")


def test_container_create(batchai, account):
    name = "cli-created"
    try:
        assert batchai("storage", "container", "create", "-n", name).out == '{\n  "created": true\n}\n'
        assert batchai("storage", "container", "create", "-n", name).out == '{\n  "created": false\n}\n'
        failed = batchai("storage", "container", "create", "-n", name, "--fail-on-exist")
        assert (failed.code, failed.err) == (
            1,
            f"ERROR: {account.blob_endpoint}/{name} already exists.\n",
        )
    finally:
        BlobStore(name, credentials=parse_connection_string(account.connection_string)).delete_root()


def test_bad_input_exit_codes(batchai, account, azurite_container, source, tmp_path):
    missing = batchai("storage", "blob", "upload-batch", "-s", tmp_path / "nope", "-d", azurite_container)
    assert (missing.code, missing.out) == (2, "")
    assert missing.err == f"ERROR: The source '{tmp_path / 'nope'}' does not exist. --source/-s takes a local folder.\n"
    no_container = batchai("storage", "blob", "upload-batch", "-s", source, "-d", "no-such-container")
    assert (no_container.code, no_container.out) == (3, "")
    assert no_container.err == (
        "ERROR: The container 'no-such-container' does not exist in storage account 'devstoreaccount1'. "
        "Create it with `batchai storage container create -n no-such-container`, or add --create-container.\n"
    )
    (tmp_path / "empty").mkdir()
    empty = batchai("storage", "blob", "upload-batch", "-s", tmp_path / "empty", "-d", azurite_container)
    assert (empty.code, empty.out) == (0, "[]\n")
    assert empty.err.startswith(f"WARNING: The folder '{tmp_path / 'empty'}' holds no files; nothing to upload.\n")
    none_match = batchai("storage", "blob", "upload-batch", "-s", source, "-d", azurite_container, "--pattern", "*.x")
    assert (none_match.code, none_match.out) == (0, "[]\n")
    assert none_match.err.startswith("WARNING: No file under ")
    usage = batchai("storage", "blob", "upload-batch", "-s", source)
    assert usage.code == 2
    assert "--destination" in usage.err


def test_bad_credentials_are_one_line_without_the_key(batchai, account, azurite_container, source, monkeypatch):
    wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ=="
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", account.connection_string.replace(account.account_key, wrong_key)
    )
    result = batchai("storage", "blob", "upload-batch", "-s", source, "-d", azurite_container, "--debug")
    assert (result.code, result.out) == (1, "")
    assert result.err.endswith(
        "ERROR: The storage account 'devstoreaccount1' rejected the credentials (AuthorizationFailure). "
        "Check --account-key or AZURE_STORAGE_KEY.\n"
    )
    assert "HEAD" in result.err  # --debug showed the requests...
    assert wrong_key not in result.err  # ...but never the key


def test_the_key_never_shows_under_debug(batchai, account, azurite_container, source):
    result = batchai("storage", "blob", "upload-batch", "-s", source, "-d", azurite_container, "--debug")
    assert result.code == 0, result.err
    assert "PUT" in result.err
    assert account.account_key not in result.err + result.out


def test_explicit_account_options_and_sas_url(batchai, account, azurite_container, source, monkeypatch):
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import generate_container_sas

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    sas = generate_container_sas(
        account.account_name,
        azurite_container,
        account_key=account.account_key,
        permission="racw",  # no list: existing blobs are refused one by one
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    url = f"{account.blob_endpoint}/{azurite_container}?{sas}"
    with_sas = batchai(
        "storage", "blob", "upload-batch", "-s", source, "-d", url, "--connection-string",
        f"BlobEndpoint={account.blob_endpoint};SharedAccessSignature={sas}", "--query", "length(@)",
    )  # fmt: skip
    assert (with_sas.code, with_sas.out) == (0, "2\n"), with_sas.err
    assert sas.split("sig=")[1].split("&")[0] not in with_sas.err


def test_file_upload_and_download_to_a_local_share_url_is_refused(batchai, account, source):
    result = batchai("storage", "file", "upload-batch", "-s", source, "-d", "https://acct.blob.core.windows.net/c")
    assert (result.code, result.out) == (2, "")
    assert result.err == "ERROR: 'https://acct.blob.core.windows.net/c' is not an Azure file share.\n"


@pytest.fixture
def file_account(azfiles_share, monkeypatch):
    connection_string, share = azfiles_share
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string)
    return parse_connection_string(connection_string).file_endpoint, share


def test_file_upload_and_download_batch(batchai, file_account, source, tmp_path):
    endpoint, share = file_account
    upload = batchai("storage", "file", "upload-batch", "-s", source, "-d", share, "--destination-path", "in")
    assert upload.code == 0, upload.err
    assert (
        upload.out == json.dumps([f"{endpoint}/{share}/in/a.txt", f"{endpoint}/{share}/in/sub/b.json"], indent=2) + "\n"
    )
    assert clean(upload.err) == "Uploaded 2 files (9 bytes) in <S> s; skipped 0, failed 0.\n"
    unchanged = batchai("storage", "file", "upload-batch", "-s", source, "-d", share, "--destination-path", "in",
                        "--skip-unchanged")  # fmt: skip
    assert (unchanged.out, clean(unchanged.err)) == (
        "[]\n",
        "Uploaded 0 files (0 bytes) in <S> s; skipped 2, failed 0.\n",
    )
    dry = batchai("storage", "file", "upload-batch", "-s", source, "-d", share, "--dryrun", "--pattern", "a*")
    assert json.loads(dry.out) == [{"File": f"{endpoint}/{share}/a.txt", "Type": "text/plain"}]
    target = tmp_path / "down"
    download = batchai("storage", "file", "download-batch", "-s", f"{share}/in", "-d", target, "-o", "tsv")
    assert download.code == 0, download.err
    assert download.out == f"{endpoint}/{share}/in/a.txt\n{endpoint}/{share}/in/sub/b.json\n"
    assert (target / "sub" / "b.json").read_text() == "{}\n"


def test_share_create(batchai, azfiles_emulator, monkeypatch):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azfiles_emulator.connection_string)
    assert batchai("storage", "share", "create", "-n", "cli-share").out == '{\n  "created": true\n}\n'
    assert batchai("storage", "share", "create", "-n", "cli-share").out == '{\n  "created": false\n}\n'
    missing = batchai("storage", "file", "upload-batch", "-s", ".", "-d", "no-such-share")
    assert (missing.code, missing.err) == (
        3,
        "ERROR: The share 'no-such-share' does not exist in storage account 'devstoreaccount1'. "
        "Create it with `batchai storage share create -n no-such-share`, or add --create-share.\n",
    )


def test_a_progress_bar_on_a_terminal_and_none_without(account, azurite_container, source, tmp_path):
    """stderr on a pseudo-terminal gets rich's bar (then the summary); --no-progress and pipes do not."""
    import os
    import pty
    import subprocess
    import sys

    from tests.helpers import REPO

    def run(*extra: str) -> str:
        leader, follower = pty.openpty()
        process = subprocess.Popen(
            [sys.executable, "-m", "batchai_cli", "storage", "blob", "upload-batch", "-s", str(source),
             "-d", azurite_container, "--overwrite", "-o", "none", *extra],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=follower,
            env={**os.environ, "BATCHAI_HOME": str(tmp_path / "home"), "COLUMNS": "100"},
        )  # fmt: skip
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the pty closes when the process exits
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=60)
        os.close(leader)
        assert process.returncode == 0
        return b"".join(chunks).decode()

    with_bar = run()
    assert "uploading" in with_bar and "2/2 files" in with_bar
    assert with_bar.rstrip().endswith("skipped 0, failed 0.")
    without = run("--no-progress")
    assert "uploading" not in without
    assert clean(without).strip() == "Uploaded 2 files (9 bytes) in <S> s; skipped 0, failed 0."
