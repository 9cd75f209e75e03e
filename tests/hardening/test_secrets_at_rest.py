"""Secrets at rest: $BATCHAI_HOME is 0700 and every file batchai writes in it 0600, from the moment
it exists (umask at creation, never a chmod after); a looser existing home gets a warning."""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from pathlib import Path

from tests.helpers import SUBSCRIPTION, run_process
from tests.jobs.conftest import custom


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _loose(root: Path, *, skip: tuple[Path, ...] = ()) -> list[str]:
    """Every folder under root not 0700 and every file not 0600 (paths under `skip` aside)."""
    found = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if any(here == s or s in here.parents for s in skip):
            dirs[:] = []
            continue
        if _mode(here) & 0o077:
            found.append(f"{here} {_mode(here):03o}")
        for name in files:
            path = here / name
            if path not in skip and not path.is_symlink() and _mode(path) & 0o077:
                found.append(f"{path} {_mode(path):03o}")
    return found


def _public_parent() -> Path:
    """A folder every local user can traverse (pytest's tmp_path is owner-only)."""
    parent = Path(tempfile.mkdtemp(prefix="batchai-public-", dir="/tmp"))
    parent.chmod(0o755)
    return parent


def test_a_new_home_is_owner_only_and_so_is_every_file_in_it(tmp_path):
    parent = _public_parent()
    home = parent / "deep" / "home"
    env = {"BATCHAI_HOME": str(home), "NO_COLOR": "1"}
    created = run_process("workspace", "create", "-g", "rg", "-n", "ws", "-l", "eastus", "-o", "none", env=env)
    assert created.code == 0, created.err
    assert run_process("configure", "--defaults", "group=rg", env=env).code == 0
    assert created.err == ""
    names = sorted(p.name for p in home.iterdir())
    assert {"state.db", "config"} <= set(names), names
    assert _mode(home) == 0o700
    assert _mode(home.parent) == 0o700  # batchai created it too
    assert _loose(home) == []


def test_another_user_cannot_read_the_state_file(tmp_path):
    """The attack of the issue: `su nobody -c 'sqlite3 -readonly .../state.db ...'` printed the keys."""
    home = _public_parent() / "home"
    env = {"BATCHAI_HOME": str(home), "NO_COLOR": "1"}
    assert run_process("workspace", "create", "-g", "rg", "-n", "ws", "-l", "eastus", "-o", "none", env=env).code == 0
    for name in ("state.db", "state.db-wal", "config"):
        if (home / name).exists():
            attempt = subprocess.run(
                ["runuser", "-u", "nobody", "--", "cat", str(home / name)], capture_output=True, timeout=10
            )
            assert attempt.returncode != 0 and b"Permission denied" in attempt.stderr, name


def test_files_are_private_from_the_moment_they_exist_not_chmod_ed_after(tmp_path, monkeypatch, capsys):
    """Creation under a 077 umask: no chmod (or fchmod) call is needed, and none is made."""
    from tests.helpers import run_cli

    home = tmp_path / "fresh"
    monkeypatch.setenv("BATCHAI_HOME", str(home))
    monkeypatch.setenv("NO_COLOR", "1")

    def refuse(*args, **kwargs):
        raise AssertionError(f"chmod after creation: {args}")

    monkeypatch.setattr(os, "chmod", refuse)
    monkeypatch.setattr(os, "fchmod", refuse)
    previous = os.umask(0o022)
    try:
        result = run_cli(capsys, "workspace", "create", "-g", "rg", "-n", "ws", "-l", "eastus", "-o", "none")
        assert os.umask(0o022) == 0o022  # the process's own umask is given back
    finally:
        os.umask(previous)
    assert result.code == 0, result.err
    monkeypatch.undo()
    assert _mode(home) == 0o700
    assert _loose(home) == []


def test_a_looser_existing_home_gets_a_warning(tmp_path):
    home = tmp_path / "open-home"
    home.mkdir()
    home.chmod(0o755)
    (home / "config").write_text(f"[core]\nsubscription = {SUBSCRIPTION}\n")
    env = {"BATCHAI_HOME": str(home), "NO_COLOR": "1"}
    listed = run_process("workspace", "list", "-o", "json", env=env)
    assert listed.code == 0
    assert listed.out == "[]\n"
    assert listed.err == (
        f"WARNING: BATCHAI_HOME ({home}) can be read by other users (mode 755), and it holds storage keys and "
        f"secrets. Run: chmod -R go= {home}\n"
    )
    home.chmod(0o700)
    assert run_process("workspace", "list", "-o", "json", env=env).err == ""


def test_a_job_leaves_only_owner_only_files_in_the_home_and_the_job_keeps_the_users_umask(lab, tmp_path):
    """The runner, the agents and the job bundle (shared folder) write 0600/0700; the job's own
    files get the umask the user ran batchai with."""
    out = tmp_path / "out"
    job = custom(
        "echo hi > $AZ_BATCHAI_JOB_TEMP/mine.txt; echo ok > $AZ_BATCHAI_OUTPUT_M/model.txt; umask",
        out,
        outputDirectories=[{"id": "M", "pathPrefix": str(out)}],
        secrets=[{"name": "MY_SECRET", "value": "s3cret-value"}],
    )
    previous = os.umask(0o022)
    try:
        created = lab.submit("modes", job)
    finally:
        os.umask(previous)
    assert created.code == 0, created.err
    assert lab.wait("modes").code == 0
    segment = lab.show("modes")["jobOutputDirectoryPathSegment"]
    assert (out / segment / "stdouterr" / "stdout.txt").read_text() == "0022\n"
    job_temp = next(lab.home.glob("nodes/*/jobs/ws/exp/modes"))
    assert _mode(job_temp / "mine.txt") == 0o644
    assert _mode(out / segment / "outputs" / "model.txt") == 0o644
    bundle = lab.home / "shared" / "jobs" / segment.rsplit("/", 1)[1]
    assert sorted(p.name for p in bundle.iterdir())  # the bundle is there, and checked below
    # (config is the test fixture's own file.)
    assert _loose(lab.home, skip=(job_temp / "mine.txt", lab.home / "config")) == []
