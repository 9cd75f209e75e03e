"""The reliability suite's load run, and `make soak`'s table.

`python -m tests.hardening.soak` (what `make soak` runs) runs, in a fresh $BATCHAI_HOME:

- load: SOAK_JOBS local jobs at once (default 50), each writing numbered lines at SOAK_RATE bytes/s
  (default 1 MB/s) for SOAK_SECONDS (default 60), while SOAK_READERS CLI loops (default 4) list
  jobs and stream their stdout; then every job's stdout.txt is checked against the SHA-256 the job
  computed of what it wrote, and `pragma integrity_check` is run on state.db;
- the fuzz (tests/hardening/test_fuzz.py) with BATCHAI_FUZZ_EXAMPLES cases per test (10,000 in all);
- the leak test (tests/hardening/test_leaks.py);
- the faults (tests/hardening/faults.py): SOAK_KILLS SIGKILLs (default 100) each of `job create`,
  the runner and the agent at random moments; Azurite stopped SOAK_OUTAGE seconds (default 20)
  during jobs writing to Blob and during upload-batch; SOAK_DISK_TRIES full disks (default 10) each
  under $BATCHAI_HOME and under a log folder; SOAK_SLURMD slurmds killed mid-job (default 6);

and prints one table: load held, faults survived, inputs tried, stuck jobs and bytes lost (both
over the load and the faults). Every loop is bounded in count and time. The short forms
(tests/hardening/test_soak_short.py, test_faults_short.py) run the load and each fault in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.hardening import faults
from tests.hardening.cli_lab import FINAL, REPO, CliLab

# Writes numbered lines at a rate for a time, then the SHA-256 and size of all it wrote.
WRITER = r"""
import hashlib, os, sys, time
rate, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
digest, size, number, start = hashlib.sha256(), 0, 0, time.monotonic()
while time.monotonic() - start < seconds:
    chunk = b"".join(b"%09d %s\n" % (number + i, b"x" * 60) for i in range(max(1, rate // 700)))
    number += max(1, rate // 700)
    sys.stdout.buffer.write(chunk); sys.stdout.flush()
    digest.update(chunk); size += len(chunk)
    time.sleep(max(0.0, 0.1 - (time.monotonic() - start) % 0.1))
open(out, "w").write(f"{digest.hexdigest()} {size}\n")
"""


@dataclass
class LoadResult:
    jobs: int
    succeeded: int = 0
    bytes_expected: int = 0
    bytes_received: int = 0
    mismatched: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    reader_calls: int = 0
    reader_errors: list[str] = field(default_factory=list)
    integrity: str = ""
    seconds: float = 0.0

    @property
    def bytes_lost(self) -> int:
        return max(0, self.bytes_expected - self.bytes_received) + (1 if self.mismatched else 0)


def run_load(work: Path, *, jobs: int, seconds: float, rate: int, readers: int) -> LoadResult:
    """`jobs` jobs at once on a cluster of as many nodes, with `readers` CLI loops reading meanwhile."""
    lab = CliLab(work, nodes=jobs)
    g = lab.group
    out = work / "out"
    script = work / "writer.py"
    script.write_text(WRITER)
    result = LoadResult(jobs=jobs)
    started = time.monotonic()
    for index in range(jobs):
        job = {
            "properties": {
                "nodeCount": 1,
                "stdOutErrPathPrefix": str(out),
                "outputDirectories": [{"id": "SUM", "pathPrefix": str(out)}],
                "customToolkitSettings": {
                    "commandLine": f"{sys.executable} -u {script} {rate} {seconds} $AZ_BATCHAI_OUTPUT_SUM/sum.txt"
                },
            }
        }
        path = work / f"job{index}.json"
        path.write_text(json.dumps(job))
        done = lab.cli("job", "create", *g, "-e", "exp", "-n", f"j{index}", "-c", "c", "-f", str(path), "-o", "none")
        assert done.returncode == 0, done.stderr
    stop = threading.Event()
    lock = threading.Lock()

    def reader(number: int) -> None:
        calls = 0
        while not stop.is_set() and calls < 10_000:
            calls += 1
            if calls % 2:
                done = lab.cli("job", "list", *g, "-e", "exp", "-o", "tsv", "--query", "[].name", timeout=60)
            else:
                job = f"j{(number + calls) % jobs}"
                done = lab.cli("job", "file", "stream", *g, "-e", "exp", "-j", job, "-f", "stdout.txt", timeout=60)
            with lock:
                result.reader_calls += 1
                if done.returncode != 0:
                    result.reader_errors.append(done.stderr.strip()[-200:])

    threads = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(readers)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds * 3 + 120
    names = {f"j{index}" for index in range(jobs)}
    while time.monotonic() < deadline:
        states = lab.states()
        if all(states.get(name) in FINAL for name in names):
            break
        time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join(timeout=90)
    result.seconds = round(time.monotonic() - started, 1)
    for name in sorted(names):
        shown = lab.show(name)
        if shown is None or shown["executionState"] not in FINAL:
            result.stuck.append(name)
            continue
        result.succeeded += shown["executionState"] == "succeeded"
        base = out / shown["jobOutputDirectoryPathSegment"]
        digest, size = (base / "outputs" / "sum.txt").read_text().split()
        result.bytes_expected += int(size)
        data = (base / "stdouterr" / "stdout.txt").read_bytes()
        result.bytes_received += min(len(data), int(size))
        if hashlib.sha256(data).hexdigest() != digest:
            result.mismatched.append(name)
    with sqlite3.connect(lab.home / "state.db") as db:
        result.integrity = db.execute("pragma integrity_check").fetchone()[0]
    return result


def _pytest(path: str, env: dict) -> tuple[bool, str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", path],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=3600,
    )
    return done.returncode == 0, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]


def main() -> int:
    jobs = int(os.environ.get("SOAK_JOBS", "50"))
    seconds = float(os.environ.get("SOAK_SECONDS", "60"))
    rate = int(os.environ.get("SOAK_RATE", str(1 << 20)))
    readers = int(os.environ.get("SOAK_READERS", "4"))
    examples = int(os.environ.get("BATCHAI_FUZZ_EXAMPLES", "3334"))
    kills = int(os.environ.get("SOAK_KILLS", "100"))
    outage = float(os.environ.get("SOAK_OUTAGE", "20"))
    disk_tries = int(os.environ.get("SOAK_DISK_TRIES", "10"))
    slurmd_tries = int(os.environ.get("SOAK_SLURMD", "6"))
    with tempfile.TemporaryDirectory(prefix="batchai-soak-") as work:
        load = run_load(Path(work) / "load", jobs=jobs, seconds=seconds, rate=rate, readers=readers)
        fault_results = faults.run_all(
            Path(work) / "faults", kills=kills, outage=outage, disk_tries=disk_tries, slurmd_tries=slurmd_tries
        )
    survived = faults.merge(fault_results)
    fuzz_ok, fuzz_line = _pytest("tests/hardening/test_fuzz.py", {**os.environ, "BATCHAI_FUZZ_EXAMPLES": str(examples)})
    leak_ok, leak_line = _pytest("tests/hardening/test_leaks.py", dict(os.environ))
    rows = [
        (
            "load held",
            f"{load.succeeded}/{load.jobs} jobs, {rate / 1e6:.1f} MB/s each for {seconds:g} s, "
            f"{readers} readers ({load.reader_calls} calls, {len(load.reader_errors)} failed), "
            f"integrity_check {load.integrity}, {load.seconds} s",
        ),
        ("stuck jobs", _stuck(load.stuck + survived.stuck)),
        ("faults survived", [result.figure() for result in fault_results]),
        ("inputs tried", f"{3 * examples} fuzzed job/cluster files and command lines: {fuzz_line}"),
        ("tracebacks", "0" if fuzz_ok else f"found: {fuzz_line}"),
        ("leaks", "0" if leak_ok else f"found: {leak_line}"),
        ("fault errors", _listed(survived.errors)),
        (
            "bytes lost",
            f"{load.bytes_lost + survived.bytes_lost} of {load.bytes_expected + survived.bytes_written} "
            f"(load {load.bytes_lost}, faults {survived.bytes_lost})"
            + (f"; checksum differs: {', '.join(load.mismatched)}" if load.mismatched else "")
            + (f"; {survived.declared_lost} declared lost by a DiskFull error" if survived.declared_lost else "")
            + (f"; {survived.in_pipe} in a killed agent's pipe" if survived.in_pipe else "")
            + (f"; {survived.kept_in_spool} kept in a spool, as an error says" if survived.kept_in_spool else ""),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'measure'.ljust(width)}  figure")
    print(f"{'-' * width}  {'-' * 6}")
    for name, value in rows:
        lines = value if isinstance(value, list) else [value]
        for number, line in enumerate(lines):
            print(f"{(name if number == 0 else '').ljust(width)}  {line}")
    ok = not load.stuck and load.bytes_lost == 0 and load.integrity == "ok" and fuzz_ok and leak_ok and survived.ok
    return 0 if ok else 1


def _stuck(stuck: list[str]) -> str | list[str]:
    return "0" if not stuck else [str(len(stuck)), *stuck]


def _listed(items: list[str]) -> str | list[str]:
    return "0" if not items else [str(len(items)), *items]


if __name__ == "__main__":
    sys.exit(main())
