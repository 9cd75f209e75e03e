"""The state store: migrations, concurrency across processes, and clean errors for a bad state file."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from batchai_cli import ids, state
from batchai_cli.errors import StateStoreError
from tests.helpers import run_process


def _open(home):
    return state.open_state()


def test_new_state_is_at_the_current_schema_in_wal_mode(home):
    db = _open(home)
    assert db.schema_version() == state.SCHEMA_VERSION
    mode = sqlite3.connect(home / "state.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_migrations_run_from_the_first_version(home, monkeypatch):
    """A state file written at schema 1 is carried forward with its rows intact."""
    current = state.MIGRATIONS
    monkeypatch.setattr(state, "MIGRATIONS", current[:1])
    monkeypatch.setattr(state, "SCHEMA_VERSION", 1)
    old = _open(home)
    rid = ids.workspace_id("sub", "rg", "ws")
    with old.transaction() as db:
        db.execute(
            "INSERT INTO resources (key, kind, subscription, resource_group, name, body, created_at, updated_at)"
            " VALUES (?, 'workspace', 'sub', 'rg', 'ws', '{\"name\": \"ws\"}', 'now', 'now')",
            (rid.key,),
        )
    old.close()
    monkeypatch.setattr(state, "MIGRATIONS", current)
    monkeypatch.setattr(state, "SCHEMA_VERSION", len(current))
    new = _open(home)
    assert new.schema_version() == len(current)
    assert new.get(rid) == {"name": "ws"}
    assert new.get_private(rid) == {}


def test_a_state_file_from_a_newer_batchai_is_refused(batchai, home):
    _open(home).close()
    sqlite3.connect(home / "state.db").execute(f"PRAGMA user_version = {state.SCHEMA_VERSION + 5}")
    result = batchai("workspace", "list")
    assert result.code == 1
    assert result.err == (
        f"ERROR: The state file {home / 'state.db'} was written by a newer batchai "
        f"(schema {state.SCHEMA_VERSION + 5}; this one knows up to {state.SCHEMA_VERSION}). "
        "Upgrade batchai, or point BATCHAI_HOME elsewhere.\n"
    )


def test_a_corrupt_state_file_gives_one_clean_line(batchai, home):
    (home / "state.db").write_bytes(b"this is not a database at all" * 100)
    result = batchai("workspace", "list")
    assert result.code == 1
    path = home / "state.db"
    assert result.err == (
        f"ERROR: The state file {path} is corrupt (file is not a database). "
        f"Move it aside (mv {path} {path}.broken) to start with an empty state.\n"
    )


def test_a_locked_state_file_gives_a_clean_error_and_writes_nothing(batchai, home, monkeypatch):
    batchai("workspace", "create", "-g", "rg", "-n", "ws", "-o", "none")
    monkeypatch.setenv("BATCHAI_STATE_TIMEOUT", "0.3")
    holder = sqlite3.connect(home / "state.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = batchai("workspace", "create", "-g", "rg", "-n", "ws2")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.code == 1
    assert result.err == (
        f"ERROR: The state file {home / 'state.db'} is locked by another batchai process (waited 0.3 s). "
        "Try again when it finishes, or raise BATCHAI_STATE_TIMEOUT (seconds).\n"
    )
    assert [w["name"] for w in batchai("workspace", "list").json()] == ["ws"]


def test_home_that_is_a_file(batchai, tmp_path, monkeypatch):
    target = tmp_path / "a-file"
    target.write_text("x")
    monkeypatch.setenv("BATCHAI_HOME", str(target))
    result = batchai("workspace", "list")
    assert result.code == 1
    assert (
        result.err == f"ERROR: BATCHAI_HOME ({target}) is a file, not a folder. "
        "Set BATCHAI_HOME to a folder you can write to.\n"
    )


@contextmanager
def _unwritable(folder):
    """Make a folder unwritable even for root (who ignores mode bits): immutable, else a read-only mount."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_unwritable_home(tmp_path):
    """A home nobody can write in: one line, exit 1, no traceback, in a real process."""
    home = tmp_path / "locked-home"
    home.mkdir()
    env = {"BATCHAI_HOME": str(home / "sub"), "NO_COLOR": "1"}
    with _unwritable(home):
        result = run_process("workspace", "create", "-g", "rg", "-n", "ws", env=env)
    assert result.code == 1, result.err
    assert result.out == ""
    prefix = f"ERROR: Cannot create BATCHAI_HOME ({home / 'sub'}): "
    assert result.err.startswith(prefix)
    reason = result.err[len(prefix) :].split(".")[0]
    assert reason in ("Permission denied", "Operation not permitted", "Read-only file system")
    assert result.err.endswith(". Set BATCHAI_HOME to a folder you can write to.\n")


def test_nothing_is_half_written_when_a_transaction_fails(home):
    db = _open(home)
    rid = ids.workspace_id("sub", "rg", "ws")
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute(
            "INSERT INTO resources (key, kind, subscription, resource_group, name, body, created_at, updated_at)"
            " VALUES (?, 'workspace', 'sub', 'rg', 'ws', '{}', 'now', 'now')",
            (rid.key,),
        )
        raise RuntimeError("crash in the middle")
    assert db.get(rid) is None


def test_concurrent_creates_in_threads_give_one_resource(home):
    rid = ids.workspace_id("sub", "rg", "same")
    outcomes = []

    def create(_):
        db = state.open_state()
        try:
            db.create(rid, {"name": "same"})
            outcomes.append("created")
        except state.DuplicateResource:
            outcomes.append("duplicate")
        finally:
            db.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(16)))
    assert sorted(outcomes) == ["created"] + ["duplicate"] * 15


def test_opening_a_fresh_file_waits_for_another_writer(home):
    """SQLite refuses the switch to WAL at once ("database is locked", no busy wait) while another
    connection writes a fresh file; opening waits for it instead (this made the test above flaky)."""
    path = os.path.join(str(home), state.STATE_FILE)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        state.open_state().close()
    finally:
        release.join()
        other.close()


@pytest.mark.slow
def test_concurrent_cli_processes_create_exactly_one_workspace(home):
    """Many `batchai workspace create` processes at once, on a fresh state file: one wins, the rest
    each print one clean line and exit 1."""
    env = {**os.environ, "BATCHAI_HOME": str(home), "NO_COLOR": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "batchai_cli", "workspace", "create", "-g", "rg", "-n", "race", "-o", "none"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(12)
    ]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0] + [1] * 11, results
    for code, out, err in results:
        assert out == ""
        if code:
            assert err == (
                'ERROR: A workspace named "race" already exists in resource group "rg". '
                "Use it as it is (batchai workspace show -g rg -n race) or choose another name.\n"
            )
    listing = run_process("workspace", "list", "--query", "[].name", "-o", "tsv", env={"BATCHAI_HOME": str(home)})
    assert listing.out == "race\n"


def test_state_errors_are_batchai_errors():
    assert issubclass(StateStoreError, Exception)
    assert StateStoreError("x").exit_code == 1
