"""Faults during a batch upload, on real processes: the service going away mid-upload (a proxy in
front of Azurite is killed), and the upload itself killed with SIGKILL then run again."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from batchai_cli.errors import StorageError
from batchai_cli.services import transfer
from batchai_cli.storage.blob import BlobStore
from batchai_cli.storage.credentials import StorageCredentials, parse_connection_string
from tests.helpers import REPO
from tests.storage.tcpproxy import TcpProxy
from tests.storage.test_transfer import Recorder, make_tree

pytestmark = pytest.mark.integration


def wait_for(condition, timeout: float = 30.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(interval)


def md5_map(store) -> dict[str, bytes | None]:
    return {entry.path: entry.content_md5 for entry in store.walk("")}


def local_md5s(files: dict[str, bytes]) -> dict[str, bytes]:
    return {path: hashlib.md5(data).digest() for path, data in files.items()}


def test_the_service_going_away_mid_upload(azurite, azurite_container, tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHAI_STORAGE_RETRIES", "2")
    files = {f"part-{i:04d}.txt": f"payload {i}\n".encode() * 20 for i in range(600)}
    source = make_tree(tmp_path / "src", files)
    direct = BlobStore(azurite_container, credentials=parse_connection_string(azurite.connection_string))
    with TcpProxy(azurite.port) as proxy:
        credentials = StorageCredentials(
            account_name=azurite.account_name,
            account_key=azurite.account_key,
            blob_endpoint=f"http://127.0.0.1:{proxy.port}/{azurite.account_name}",
        )
        store = BlobStore(azurite_container, credentials=credentials)
        recorder = Recorder()
        errors = []

        def upload():
            try:
                transfer.upload_batch(store, source, max_connections=4, reporter=recorder)
            except StorageError as exc:
                errors.append(exc)

        worker = threading.Thread(target=upload)
        started = time.monotonic()
        worker.start()
        wait_for(lambda: len(list(direct.walk(""))) >= 100)
        proxy.stop()
        worker.join(timeout=60)
        assert not worker.is_alive()
    assert time.monotonic() - started < 30  # retries are bounded, the rest is not attempted
    (error,) = errors
    summary = recorder.summary
    uploaded = {r["path"] for r in summary["uploaded"]}
    failed = {f["path"] for f in summary["failed_files"]}
    assert uploaded | failed == set(files) and not uploaded & failed
    assert 100 <= len(uploaded) < 600
    assert str(error).startswith(
        f"{len(failed)} of 600 files failed to upload (run the same command again with --skip-unchanged to "
        "finish the job):\n  part-"
    )
    assert "did not answer: connection refused" in str(error)
    assert "not attempted" in str(error)
    assert str(error).count("\n  ") == 21  # 20 files and "... and N more"
    # Everything reported uploaded is really there, whole.
    on_server = md5_map(direct)
    expected = local_md5s(files)
    assert all(on_server[path] == expected[path] for path in uploaded)
    # Running it again finishes the job.
    summary = transfer.upload_batch(direct, source, skip_unchanged=True)
    assert summary["failed"] == 0
    assert md5_map(direct) == expected


def run_upload(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "batchai_cli", "storage", "blob", "upload-batch", *args],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
@pytest.mark.parametrize("kill_when", ["small files", "large files"])
def test_an_upload_killed_with_sigkill_then_run_again(azurite, azurite_container, tmp_path, kill_when):
    files = {f"small/{i:03d}.txt": f"small file {i}\n".encode() * 30 for i in range(300)}
    big = os.urandom(40 * 1024 * 1024)  # above the single-PUT limit: parallel blocks
    files.update({"large/a.bin": big, "large/b.bin": big[::-1], "large/c.bin": big[7:] + big[:7]})
    source = make_tree(tmp_path / "src", files)
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "BATCHAI_HOME": str(tmp_path / "home"),
    }
    store = BlobStore(azurite_container, credentials=parse_connection_string(azurite.connection_string))

    def small_count() -> int:
        return sum(1 for entry in store.walk("") if entry.path.startswith("small/"))

    process = run_upload(["-s", str(source), "-d", azurite_container, "--max-connections", "4"], env)
    try:
        if kill_when == "small files":
            wait_for(lambda: small_count() >= 50)
        else:
            wait_for(lambda: small_count() == 300)
            time.sleep(0.15)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    expected = local_md5s(files)
    partial = md5_map(store)
    assert set(partial) < set(expected)  # killed before the end
    assert {path: partial[path] for path in partial} == {path: expected[path] for path in partial}  # none torn
    for path in partial:
        assert hashlib.md5(store.read(path)).digest() == expected[path]

    rerun = run_upload(["-s", str(source), "-d", azurite_container, "--skip-unchanged", "--no-progress"], env)
    out, err = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, err.decode()
    assert md5_map(store) == expected
    assert f"skipped {len(partial)}, failed 0." in err.decode()
    resent = {record["Blob"].split(f"/{azurite_container}/", 1)[1] for record in json.loads(out)}
    assert resent == set(expected) - set(partial)
