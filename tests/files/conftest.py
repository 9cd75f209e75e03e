"""Fixtures for `job file` and `cluster file` tests: the jobs lab (a workspace, an experiment and a
local cluster in an isolated $BATCHAI_HOME), and jobs whose output is on Azurite Blob or on the
Azure Files emulator, reached through AZURE_STORAGE_CONNECTION_STRING as a user's would be."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from tests.helpers import REPO
from tests.jobs.conftest import Lab, custom, lab  # noqa: F401 - the lab fixture, shared

JOB_ARGS = ("-g", "rg", "-w", "ws", "-e", "exp")
# The emulators' well-known development account (not a secret).
ACCOUNT = "devstoreaccount1"


def file_args(job: str, *more: str) -> tuple[str, ...]:
    return (*JOB_ARGS, "-j", job, *more)


@pytest.fixture
def blob_job(azurite, azurite_container, monkeypatch):
    """job properties with stdout/stderr (and outputs) on an Azurite container mounted as `bfs`."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)

    def make(command: str, **more) -> dict:
        volume = {
            "accountName": ACCOUNT,
            "containerName": azurite_container,
            "credentials": {"accountKey": azurite.account_key},
            "relativeMountPath": "bfs",
        }
        return {
            "nodeCount": 1,
            "customToolkitSettings": {"commandLine": command},
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs",
            "mountVolumes": {"azureBlobFileSystems": [volume]},
            **more,
        }

    make.container = azurite_container
    make.azurite = azurite
    return make


@pytest.fixture
def share_job(azfiles_emulator, azfiles_share, monkeypatch):
    """job properties with stdout/stderr on an Azure Files emulator share mounted as `afs`."""
    connection_string, share = azfiles_share
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string)
    key, endpoint = azfiles_emulator.account_key, azfiles_emulator.endpoint

    def make(command: str, **more) -> dict:
        volume = {
            "accountName": ACCOUNT,
            "azureFileUrl": f"{endpoint.rstrip('/')}/{share}",
            "credentials": {"accountKey": key},
            "relativeMountPath": "afs",
        }
        return {
            "nodeCount": 1,
            "customToolkitSettings": {"commandLine": command},
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
            "mountVolumes": {"azureFileShares": [volume]},
            **more,
        }

    make.share = share
    return make


def stream_process(job: str, *more: str, env: dict | None = None) -> subprocess.Popen:
    """`batchai job file stream` as its own process (stdout as bytes), for signals and timing."""
    return subprocess.Popen(
        [sys.executable, "-m", "batchai_cli", "job", "file", "stream", *file_args(job, *more)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def finish(process: subprocess.Popen, timeout: float = 60) -> tuple[bytes, bytes]:
    """The rest of a stream process's stdout and stderr, once it has exited. (Not communicate():
    it reads the pipes' file descriptors and would skip what a readline() left buffered.)"""
    out = process.stdout.read()
    err = process.stderr.read()
    process.wait(timeout=timeout)
    return out, err


def python_job(script: str) -> str:
    """A command line running `script` with this interpreter, unbuffered."""
    return f"{sys.executable} -u -c {shlex.quote(script)}"
