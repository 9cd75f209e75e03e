"""Fixtures for jobs that really run: a workspace, an experiment and a local cluster in an isolated
$BATCHAI_HOME, and helpers to submit a job.json and wait for it."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import Result


@dataclass
class Lab:
    batchai: object
    tmp: Path
    home: Path

    def job_file(self, properties: dict, name: str = "job.json") -> Path:
        path = self.tmp / name
        path.write_text(json.dumps({"properties": properties}))
        return path

    def submit(self, name: str, properties: dict, *extra: str, cluster: str = "c") -> Result:
        return self.create(name, self.job_file(properties, f"{name}.json"), *extra, cluster=cluster)

    def create(self, name: str, path: Path, *extra: str, cluster: str = "c") -> Result:
        """`job create` of the job file at `path` (a whole document, as users write them)."""
        return self.batchai(
            "job", "create", "-g", "rg", "-w", "ws", "-e", "exp", "-n", name, "-c", cluster, "-f", str(path), *extra
        )

    def wait(self, name: str, timeout: float = 60) -> Result:
        return self.batchai(
            "job",
            "wait",
            "-g",
            "rg",
            "-w",
            "ws",
            "-e",
            "exp",
            "-n",
            name,
            "--interval",
            "0.1",
            "--timeout",
            str(timeout),
        )

    def show(self, name: str) -> dict:
        result = self.batchai("job", "show", "-g", "rg", "-w", "ws", "-e", "exp", "-n", name)
        assert result.code == 0, result.err
        return result.json()

    def bundle(self, name: str) -> Path:
        """The job's bundle folder (in the shared folder: $BATCHAI_SHARED_DIR, else the home's)."""
        from batchai_cli import bundle

        return Path(bundle.folder_of(self.show(name)))

    def stdouterr(self, name: str, prefix: Path) -> Path:
        return prefix / self.show(name)["jobOutputDirectoryPathSegment"] / "stdouterr"

    def create_cluster(self, name: str, nodes: int, *extra: str) -> Result:
        """`cluster create` of a cluster of `nodes` nodes, as a user types it; the result as it is."""
        options = ("-s", "Standard_NC6", "-t", str(nodes), "-u", "tester", "-p", "Passw0rd!")
        return self.batchai("cluster", "create", "-g", "rg", "-w", "ws", "-n", name, *options, *extra)

    def cluster(self, name: str = "c", nodes: int = 1, *extra: str) -> dict:
        result = self.create_cluster(name, nodes, *extra)
        assert result.code == 0, result.err
        return result.json()


@pytest.fixture
def lab(batchai, tmp_path, home) -> Lab:
    assert batchai("workspace", "create", "-g", "rg", "-n", "ws", "-o", "none").code == 0
    assert batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "exp", "-o", "none").code == 0
    lab = Lab(batchai, tmp_path, home)
    lab.cluster("c", 1)
    yield lab
    # Leave no runner or agent behind: terminate whatever is still active.
    listing = batchai(
        "job",
        "list",
        "-g",
        "rg",
        "-w",
        "ws",
        "-e",
        "exp",
        "--query",
        "[?executionState!='succeeded' && executionState!='failed'].name",
        "-o",
        "tsv",
    )
    for job_name in listing.out.split():
        batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", job_name, "-y")
    # And no cluster's setup task: deleting the cluster stops it.
    for cluster in batchai("cluster", "list", "-g", "rg", "-w", "ws", "--query", "[].name", "-o", "tsv").out.split():
        batchai("cluster", "delete", "-g", "rg", "-w", "ws", "-n", cluster, "-y")


def custom(command: str, out: Path, **more) -> dict:
    """A one-node customToolkit job writing stdout/stderr and outputs to a local folder."""
    return {"nodeCount": 1, "customToolkitSettings": {"commandLine": command}, "stdOutErrPathPrefix": str(out), **more}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


def until(check, timeout: float = 30, what: str = "the condition"):
    """Poll check() until it returns something true, and return that; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_state(lab: Lab, name: str, states: tuple[str, ...], timeout: float = 30) -> dict:
    """The job once it is in one of `states`."""
    return until(
        lambda: (shown := lab.show(name))["executionState"] in states and shown, timeout, f"{name} to be {states}"
    )


def wait_for_text(path: Path, text: str, timeout: float = 10) -> None:
    until(lambda: path.exists() and path.read_text() == text, timeout, f"{path} to hold {text!r}")
