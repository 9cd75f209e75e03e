"""Helpers shared by the tests: run the CLI in-process as a user would, and normalize volatile text."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00")
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def normalize(text: str) -> str:
    """Replace timestamps, which change on every run, with <TIME>."""
    return TIME.sub("<TIME>", text)


def run_cli(capsys, *args: str) -> Result:
    """Run `batchai ARGS` in this process through the real main(), as the console script does."""
    from batchai_cli.cli import main

    capsys.readouterr()
    try:
        main([str(arg) for arg in args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def run_process(*args: str, env: dict | None = None, input: str | None = None, timeout: float = 60, **kwargs) -> Result:
    """Run `batchai ARGS` as a separate process (python -m batchai_cli), for what needs a real process."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "batchai_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
        **kwargs,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def pids_running(*parts: str) -> list[int]:
    """The live processes (not zombies) whose command line, arguments joined by spaces, contains
    every one of `parts`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
            if not all(part in command for part in parts):
                continue
            with open(f"/proc/{entry}/stat") as handle:
                if handle.read().rpartition(") ")[2][:1] in ("Z", "X"):
                    continue
        except OSError:
            continue
        found.append(int(entry))
    return found
