"""A workspace, an experiment and a local cluster in a $BATCHAI_HOME of their own, driven by the CLI
as separate processes (the reliability suite kills them, and runs outside pytest in `make soak`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FINAL = ("succeeded", "failed")


class CliLab:
    """`job create`, `show` and friends on cluster `c` (of `nodes` nodes) in workspace ws/exp."""

    group = ("-g", "rg", "-w", "ws")

    def __init__(self, work: Path, *, nodes: int = 1, env: dict | None = None, home: Path | None = None):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.home = home or work / "home"
        self.home.mkdir(mode=0o700, exist_ok=True)
        inherited = {name: value for name, value in os.environ.items() if name != "BATCHAI_SHARED_DIR"}
        self.env = {**inherited, "BATCHAI_HOME": str(self.home), "NO_COLOR": "1", **(env or {})}
        admin = ("-u", "u", "-p", "Passw0rd!")
        for args in (
            ("workspace", "create", "-g", "rg", "-n", "ws", "-l", "eastus"),
            ("experiment", "create", *self.group, "-n", "exp"),
            ("cluster", "create", *self.group, "-n", "c", "-s", "Standard_NC6", "-t", str(nodes), *admin),
        ):
            done = self.cli(*args, "-o", "none")
            assert done.returncode == 0, done.stderr

    def cluster(self, name: str, nodes: int, *extra: str) -> None:
        """Another cluster, `extra` as `cluster create` takes it (e.g. -f cluster.json)."""
        admin = ("-u", "u", "-p", "Passw0rd!")
        done = self.cli(
            "cluster", "create", *self.group, "-n", name, "-s", "Standard_NC6", "-t", str(nodes), *admin, *extra
        )
        assert done.returncode == 0, done.stderr

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "batchai_cli", *args]

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, env=self.env, timeout=timeout, cwd=REPO)

    def job_file(self, name: str, properties: dict) -> Path:
        path = self.work / f"{name}.json"
        path.write_text(json.dumps({"properties": properties}))
        return path

    def create_argv(self, name: str, properties: dict, cluster: str = "c") -> list[str]:
        path = self.job_file(name, properties)
        return self.argv("job", "create", *self.group, "-e", "exp", "-n", name, "-c", cluster, "-f", str(path))

    def create(self, name: str, properties: dict, cluster: str = "c") -> dict:
        argv = self.create_argv(name, properties, cluster)
        done = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=120, cwd=REPO)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def show(self, name: str) -> dict | None:
        """The job, or None when there is none of that name (exit code 3)."""
        done = self.cli("job", "show", *self.group, "-e", "exp", "-n", name)
        if done.returncode == 3:
            return None
        if done.returncode != 0:
            raise AssertionError(f"job show {name} failed ({done.returncode}): {done.stderr.strip()}")
        return json.loads(done.stdout)

    def settle(self, name: str, timeout: float) -> tuple[dict | None, bool]:
        """(the job, True) once it is succeeded or failed, (None, True) when there is no such job,
        (the job as last seen, False) when it is neither within `timeout` seconds: stuck."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.show(name)
            if shown is None or shown["executionState"] in FINAL:
                return shown, True
            if time.monotonic() > deadline:
                return shown, False
            time.sleep(0.2)

    def states(self) -> dict[str, str]:
        listed = self.cli("job", "list", *self.group, "-e", "exp", "--query", "[].[name, executionState]", "-o", "tsv")
        return dict(line.split("\t") for line in listed.stdout.splitlines() if "\t" in line)
