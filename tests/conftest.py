"""Shared pytest configuration. Service fixtures live in tests/fixtures/ and are listed here."""

from __future__ import annotations

import pytest

from tests.helpers import SUBSCRIPTION, Result, run_cli

pytest_plugins: list[str] = [
    "tests.fixtures.azurite",
    "tests.fixtures.azfiles",
    "tests.fixtures.containers",
    "tests.fixtures.slurm",
    "tests.fixtures.samba",
]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An isolated $BATCHAI_HOME with a fixed subscription id; no colors, fixed width, no user defaults."""
    folder = tmp_path / "batchai-home"
    folder.mkdir(mode=0o700)
    (folder / "config").write_text(f"[core]\nsubscription = {SUBSCRIPTION}\n")
    monkeypatch.setenv("BATCHAI_HOME", str(folder))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.delenv("BATCHAI_SHARED_DIR", raising=False)
    for name in ("GROUP", "WORKSPACE", "EXPERIMENT", "CLUSTER", "LOCATION", "OUTPUT"):
        monkeypatch.delenv(f"BATCHAI_DEFAULTS_{name}", raising=False)
    return folder


@pytest.fixture
def batchai(home, capsys):
    """Run the CLI in-process: batchai("workspace", "list") -> Result(code, out, err)."""

    def run(*args: str) -> Result:
        return run_cli(capsys, *args)

    return run
