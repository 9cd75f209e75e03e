"""`batchai emulators start` and `python -m batchai_cli.emulators`: the Files emulator with Azurite
beside it, as users run them, reached through the connection string they print."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import uuid

import pytest

from batchai_cli.storage import open_store
from batchai_cli.storage.credentials import parse_connection_string
from tests.fixtures.azurite import ensure_azurite_installed, free_port
from tests.helpers import REPO

pytestmark = pytest.mark.integration


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stop(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate(timeout=5)
    return process.returncode, err


def test_python_m_starts_the_files_emulator_and_azurite_beside_it(tmp_path):
    azurite = ensure_azurite_installed()
    blob_port = free_port()
    process = start(
        "-m",
        "batchai_cli.emulators",
        "--location",
        str(tmp_path / "data"),
        "--blob-port",
        str(blob_port),
        "--file-port",
        "0",
        "--azurite",
        str(azurite),
    )
    try:
        connection = process.stdout.readline().strip()
        credentials = parse_connection_string(connection)
        assert credentials.blob_endpoint == f"http://127.0.0.1:{blob_port}/devstoreaccount1"
        assert credentials.file_endpoint.startswith("http://127.0.0.1:")
        name = f"t{uuid.uuid4().hex[:12]}"
        for location in (f"azureblob://{name}", f"azurefile://{name}"):
            store = open_store(location, credentials)
            store.create_root()
            store.write("hello.txt", b"hello")
            assert store.read("hello.txt") == b"hello"
    finally:
        code, err = stop(process)
    assert code == 0, err
    assert "Azure Files emulator: http://127.0.0.1:" in err
    assert f"Azurite (Blob): http://127.0.0.1:{blob_port}/devstoreaccount1" in err
    assert f"export AZURE_STORAGE_CONNECTION_STRING='{connection}'" in err
    # Both stopped: Azurite's port is free again, and the share's data stayed in the location.
    assert not listening(blob_port)
    assert (tmp_path / "data" / "files" / name).is_dir()


def test_batchai_emulators_start_without_azurite(tmp_path):
    process = start(
        "-m", "batchai_cli", "emulators", "start", "--no-azurite", "--file-port", "0", "--location", str(tmp_path)
    )
    try:
        connection = process.stdout.readline().strip()
        credentials = parse_connection_string(connection)
        assert credentials.blob_endpoint is None
        store = open_store("azurefile://firstday", credentials)
        store.create_root()
        assert list(store.list_dir("")) == []
    finally:
        code, err = stop(process)
    assert code == 0, err
    assert "Azurite (Blob) is not running: it is not installed. Install it with `npm install -g azurite`" in err


def test_a_taken_port_is_said_with_what_to_do(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "batchai_cli.emulators", "--no-azurite", "--file-port", str(port)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            env={"BATCHAI_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"ERROR: The Azure Files emulator cannot listen on 127.0.0.1:{port}: Address already in use. "
        "Give another --file-port (0 picks a free one).\n"
    )
