"""Issue 13, item 3: a full $BATCHAI_HOME (a 2 MB tmpfs; the tests run as root).

A job that prints more than the home holds used to block on its stdout pipe for ever, and
`job terminate` then said "cannot rollback - no transaction is active". Now the agent drains the
job's output whatever the spool's disk does (what is shipped already is given back to the disk),
a disk that stays full is a DiskFull error naming the path, and the state store says "disk full"."""

from __future__ import annotations

import os
import sqlite3
import threading
import time

import pytest

from batchai_cli.agent.logs import LogShipper
from batchai_cli.errors import StateStoreError
from batchai_cli.state import State
from batchai_cli.storage.local import LocalStore
from tests.fixtures.disks import fill, mount_tmpfs, small_disk, unmount
from tests.helpers import SUBSCRIPTION
from tests.jobs.conftest import custom, until


@pytest.fixture
def small(tmp_path):
    with small_disk(tmp_path / "small") as folder:
        yield folder


@pytest.fixture
def home(home):
    """$BATCHAI_HOME on a 2 MB tmpfs (the conftest's home, with its config written again on it)."""
    mount_tmpfs(home)
    (home / "config").write_text(f"[core]\nsubscription = {SUBSCRIPTION}\n")
    yield home
    unmount(home)


def numbered(count: int) -> bytes:
    return b"".join(b"%09d %s\n" % (i, b"x" * 90) for i in range(count))


def test_a_spool_bigger_than_its_disk_loses_nothing(small, tmp_path):
    """5 MB through a 2 MB spool: shipped bytes are given back to the disk as the job writes."""
    store = LocalStore(tmp_path / "out")
    told = []
    shipper = LogShipper(store, "logs", str(small / "spool"), on_disk_full=told.append)
    stream = shipper.open("stdout.txt")
    shipper.start()
    data = numbered(50_000)
    for start in range(0, len(data), 8192):
        stream.write(data[start : start + 8192])
    assert shipper.close(retry_seconds=1) == []
    assert (tmp_path / "out" / "logs" / "stdout.txt").read_bytes() == data
    assert told == [] and shipper.disk_full is None
    # The spool is as long as what was written; what it still holds on disk is far less.
    spool = small / "spool" / "stdout.txt"
    assert spool.stat().st_size == len(data)
    assert spool.stat().st_blocks * 512 < 2 * 1024 * 1024


def test_a_disk_that_stays_full_is_drained_and_reported_once(small, tmp_path):
    """Filled by something else: the writer is never blocked, the loss is counted and named."""
    fill(small)
    store = LocalStore(tmp_path / "out")
    told = []
    shipper = LogShipper(store, "logs", str(small / "spool"), on_disk_full=told.append)
    stream = shipper.open("stdout.txt")
    shipper.start()
    data = numbered(20_000)
    started = time.monotonic()
    for start in range(0, len(data), 8192):
        stream.write(data[start : start + 8192])
    assert time.monotonic() - started < 2 * 2.0 + 1  # at most one wait for room, never a block
    path = str(small / "spool" / "stdout.txt")
    (problem,) = told
    assert problem == shipper.disk_full
    assert problem["code"] == "DiskFull"
    assert problem["details"] == [{"name": "path", "value": path}]
    assert problem["message"] == (
        f"The disk that holds {path} is full (No space left on device): stdout.txt was kept up to byte 0; "
        "what is written after it is lost. Free space on that disk (or set BATCHAI_HOME to a larger one) "
        "and run the job again."
    )
    # Space coming back does not resume the stream: a gap would corrupt everything after it.
    os.unlink(small / "filler")
    stream.write(b"after\n")
    assert shipper.close(retry_seconds=1) == [
        f"stdout.txt: The disk that holds {path} is full (No space left on device): stdout.txt was kept up to "
        f"byte 0; the {len(data) + 6} bytes written after it are lost. Free space on that disk (or set "
        "BATCHAI_HOME to a larger one) and run the job again."
    ]
    assert stream.lost == len(data) + 6


def test_the_drain_goes_on_while_the_agent_reports(small, tmp_path):
    """The agent's handler may write to execution.log (itself on the full disk) and may fail: the
    stream neither deadlocks nor stops reading."""
    fill(small)
    shipper = LogShipper(LocalStore(tmp_path / "out"), "logs", str(small / "spool"))
    execution = shipper.open("execution.log")

    def handler(problem: dict) -> None:
        execution.text(f"Error {problem['code']}: {problem['message']}\n")
        raise RuntimeError("the handler failed")

    shipper.on_disk_full = handler
    worker = threading.Thread(target=lambda: [execution.text("line\n") for _ in range(1000)])
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert shipper.disk_full["code"] == "DiskFull"
    assert execution.lost > 1000 * 5
    shipper.close(retry_seconds=0)


def test_a_job_printing_more_than_the_full_home_holds_ends(lab, home, tmp_path, monkeypatch):
    """The issue's case: 4.8 MB printed with the home on 2 MB. The job is never blocked on its pipe:
    it ends, and every byte reaches the output folder (which is not on the small disk)."""
    monkeypatch.setenv("BATCHAI_LOG_RETRY_SECONDS", "2")
    out = tmp_path / "out"
    marker = tmp_path / "reached-the-end"
    script = tmp_path / "loud.py"
    script.write_text(
        "import sys\n"
        "for i in range(48_000):\n"
        "    sys.stdout.write('%09d %s\\n' % (i, 'x' * 90))\n"
        "sys.stdout.flush()\n"
        f"open({str(marker)!r}, 'w').write('done')\n"
    )
    assert lab.submit("loud", custom(f"python3 {script}", out)).code == 0
    waited = lab.wait("loud", timeout=90)
    assert marker.exists(), "the job was blocked writing its output"
    shown = lab.show("loud")
    assert shown["executionState"] in ("succeeded", "failed"), waited.err
    stdout = lab.stdouterr("loud", out) / "stdout.txt"
    if shown["executionState"] == "succeeded":
        assert stdout.read_bytes() == b"".join(b"%09d %s\n" % (i, b"x" * 90) for i in range(48_000))
    else:  # the disk was full for good (the state file grew meanwhile): said so, with the path
        messages = " ".join(error["message"] for error in shown["executionInfo"]["errors"])
        assert "is full (No space left on device)" in messages, shown["executionInfo"]


def test_a_home_filled_by_something_else_fails_the_job_naming_the_path(lab, home, tmp_path, monkeypatch):
    """The home fills up while the job runs: the job is not blocked (it reaches its end), it fails
    with the disk and the spool's path named, and its end is recorded (the shipper's reserve gives
    the agent and the runner room for that); the CLI never says "cannot rollback"."""
    monkeypatch.setenv("BATCHAI_LOG_RETRY_SECONDS", "2")
    out = tmp_path / "out"
    started, go, end = tmp_path / "started", tmp_path / "go", tmp_path / "end"
    command = (
        f"touch {started}; while [ ! -e {go} ]; do sleep 0.1; done; "
        f"head -c 3000000 /dev/zero | tr '\\0' 'y'; touch {end}"
    )
    assert lab.submit("filled", custom(command, out)).code == 0
    until(started.exists, 60, "the job to start")
    fill(home)
    go.touch()
    waited = lab.wait("filled", timeout=60)
    assert end.exists(), "the job was blocked writing its output"
    assert waited.code == 1, waited.err
    assert "cannot rollback" not in waited.err
    shown = lab.show("filled")
    assert shown["executionState"] == "failed"
    (error,) = [e for e in shown["executionInfo"]["errors"] if "is full (No space left on device)" in e["message"]]
    # DiskFull once the agent ends the job on its shipper's on_disk_full; LogShippingFailed until then.
    assert error["code"] in ("DiskFull", "LogShippingFailed"), shown["executionInfo"]
    assert "/spool/stdout.txt is full (No space left on device): stdout.txt was kept up to byte " in error["message"]
    assert "Free space on that disk (or set BATCHAI_HOME to a larger one) and run the job again." in error["message"]
    terminated = lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "filled", "-y")
    assert "cannot rollback" not in terminated.err and "Unexpected error" not in terminated.err


def test_the_state_store_says_the_disk_is_full(small):
    """A write that finds the disk full is a StateStoreError naming the file and what to do,
    never "cannot rollback - no transaction is active" (SQLite rolled back by itself)."""
    from batchai_cli import ids

    state = State(str(small / "state.db"))
    rid = ids.parse(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws")
    state.create(rid, {"name": "ws"})
    fill(small)
    path = str(small / "state.db")
    big = {"name": "ws", "tags": {"t": "x" * 3_000_000}}
    with pytest.raises(StateStoreError) as raised:
        state.update(rid, lambda body: big)
    assert str(raised.value) == (
        f"Cannot write the state file {path}: the disk that holds it is full (database or disk is full). "
        f"Free space on it (df -h {small}), or set BATCHAI_HOME to a folder on another disk."
    )
    with pytest.raises(StateStoreError, match="the disk that holds it is full"):
        state.create(rid.child("experiment", "e"), big)
    # The connection is still usable, and nothing half-written is left.
    assert state.get(rid) == {"name": "ws"}
    os.unlink(small / "filler")
    state.update(rid, lambda body: {"name": "ws", "tags": {"t": "y"}})
    assert state.get(rid)["tags"] == {"t": "y"}
    state.close()
    with sqlite3.connect(path) as db:
        assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
