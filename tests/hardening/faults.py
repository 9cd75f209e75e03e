"""The faults the reliability suite puts jobs through (issue 13), each a function that returns its
counts (a FaultResult: tries, stuck, bytes lost, errors). `make soak` (soak.py) runs them at scale
and prints the figures; tests/hardening/test_faults_short.py runs each a few times in `make test`.

Every job here runs WRITER: numbered lines of a known content written to stdout, with the count of
bytes each write handed to the pipe kept in an "ack" file beside it, so what the job wrote is known
even when it is killed. After each fault:

- stuck: the job is not succeeded or failed within a bounded time of being looked at (`job show` is
  "the next command that looks"), or one of its processes is still alive a bounded time after that;
- bytes lost: what the job wrote that is neither in storage (stdout.txt, checked byte for byte against
  what was written: a gap, a torn or doubled write counts every byte after it) nor kept where an
  error names it; what an error declares lost (a disk that stays full) is counted apart;
- errors: anything else wrong, each said in a line: an "Unexpected error" or a traceback, a failure
  without a clear reason, a state.db failing `pragma integrity_check`.

Loops are bounded in count and time; the services (Azurite, Slurm's daemons) come from tests/fixtures.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.hardening.cli_lab import REPO, CliLab
from tests.helpers import pids_running

# Numbered lines, STEP at a time, spread over `seconds`; then, if a gate file is named, waits for it
# (at most GATE_WAIT s) before it ends: a job that is still alive after its job was failed shows.
WRITER = r"""
import os, sys, time
lines, seconds, ack, gate = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
fd = os.open(ack, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
step, written = 50, 0
pause = seconds / max(1, lines // step)
for first in range(0, lines, step):
    chunk = b"".join(b"%09d %s\n" % (n, b"x" * 54) for n in range(first, min(lines, first + step)))
    view = memoryview(chunk)
    while view:
        view = view[os.write(1, view):]
    written += len(chunk)
    os.pwrite(fd, b"%020d" % written, 0)
    time.sleep(pause)
deadline = time.monotonic() + float(os.environ.get("GATE_WAIT", "30"))
while gate != "-" and not os.path.exists(gate) and time.monotonic() < deadline:
    time.sleep(0.05)
"""
SETTLE_SECONDS = 60.0  # a job looked at must be succeeded or failed within this
LINGER_SECONDS = 15.0  # and its processes gone within this, after that


def stream(lines: int) -> bytes:
    """What WRITER writes for `lines` lines."""
    return b"".join(b"%09d %s\n" % (n, b"x" * 54) for n in range(lines))


@dataclass
class FaultResult:
    kind: str
    tries: int = 0
    stuck: list[str] = field(default_factory=list)
    bytes_written: int = 0
    bytes_lost: int = 0
    declared_lost: int = 0  # lost, and said so by an error (a disk that stayed full)
    in_pipe: int = 0  # agent kills: handed to the job's pipe, never read by the killed agent
    kept_in_spool: int = 0  # not in storage, but in the node's spool where the job's error says
    errors: list[str] = field(default_factory=list)
    outcomes: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # each failed job's errors, for the record
    seconds: float = 0.0

    def figure(self) -> str:
        """One line for soak's table."""
        outcomes = ", ".join(f"{count} {what}" for what, count in sorted(self.outcomes.items()))
        parts = [f"{self.tries} tries ({outcomes})", f"{len(self.stuck)} stuck", f"{self.bytes_lost} bytes lost"]
        if self.declared_lost:
            parts.append(f"{self.declared_lost} declared lost by a DiskFull error")
        if self.in_pipe:
            parts.append(f"{self.in_pipe} in the pipe when the agent died")
        if self.kept_in_spool:
            parts.append(f"{self.kept_in_spool} not in storage but kept in the node's spool, as the error says")
        parts.append(f"{len(self.errors)} errors")
        return f"{self.kind}: " + ", ".join(parts) + f", {self.seconds:.0f} s"

    @property
    def ok(self) -> bool:
        return not self.stuck and not self.bytes_lost and not self.errors


def merge(results: list[FaultResult]) -> FaultResult:
    total = FaultResult("all")
    for result in results:
        total.tries += result.tries
        total.stuck += [f"{result.kind}: {name}" for name in result.stuck]
        total.bytes_written += result.bytes_written
        total.bytes_lost += result.bytes_lost
        total.declared_lost += result.declared_lost
        total.in_pipe += result.in_pipe
        total.kept_in_spool += result.kept_in_spool
        total.errors += [f"{result.kind}: {error}" for error in result.errors]
        total.seconds += result.seconds
    return total


# -- one job under a fault -----------------------------------------------------------------------------


@dataclass
class Writer:
    """One WRITER job: its files and what it wrote."""

    folder: Path
    lines: int
    seconds: float
    gated: bool = True
    at_end: int | None = None  # what it had written when its job was seen ended

    def __post_init__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.script = self.folder / "writer.py"
        self.script.write_text(WRITER)
        self.ack = self.folder / "ack"
        self.gate = self.folder / "gate"
        self.out = self.folder / "out"

    def properties(self, **more) -> dict:
        gate = str(self.gate) if self.gated else "-"
        command = f"{sys.executable} {self.script} {self.lines} {self.seconds} {self.ack} {gate}"
        return {
            "nodeCount": 1,
            "customToolkitSettings": {"commandLine": command},
            "stdOutErrPathPrefix": str(self.out),
            **more,
        }

    def acked(self) -> int:
        try:
            return int(self.ack.read_bytes() or b"0")
        except (OSError, ValueError):
            return 0

    def release(self) -> None:
        self.gate.touch()


def check_bytes(
    result: FaultResult, name: str, stored: bytes, writer: Writer, *, kept: int | None = None, declared: int = 0
) -> None:
    """Count what `stored` (the job's stdout.txt) lacks of what the writer wrote. `kept`: the bytes
    of it the node's spool holds, which is all an agent killed before shipping can answer for;
    `declared`: the bytes the job's errors say were lost (a full disk), counted apart."""
    acked = writer.acked() if writer.at_end is None else writer.at_end
    result.bytes_written += acked
    expected = stream(writer.lines)
    if stored != expected[: len(stored)]:
        same = next(i for i, (a, b) in enumerate(zip(stored, expected, strict=False)) if a != b) if stored else 0
        same = min(same, len(stored))
        result.errors.append(f"{name}: stdout.txt differs from what the job wrote from byte {same} on")
        result.bytes_lost += max(acked, len(stored)) - same
        return
    if kept is not None and kept < acked:
        result.in_pipe += acked - kept
        acked = kept
    missing = max(0, acked - len(stored))
    result.declared_lost += min(missing, declared)
    result.bytes_lost += missing - min(missing, declared)


def with_spool(result: FaultResult, lab: CliLab, name: str, shown: dict, writer: Writer, stored: bytes) -> bytes:
    """`stored`, or, for a job failed saying its output is kept in the node's spool
    (LogShippingFailed: "... they are kept in <spool>"), what that spool holds when it holds more:
    those bytes are not lost, they are where the error says (counted in kept_in_spool). A failure
    that says nothing of the kind, or a spool that differs from what the job wrote, is an error."""
    if shown["executionState"] != "failed" or len(stored) >= (writer.at_end or 0):
        return stored
    spool = _spool_bytes(lab, name)
    if not any(f"they are kept in {lab.home}" in error["message"] for error in _errors_of(shown)):
        result.errors.append(f"{name}: failed without its output, and without saying where the output is kept")
        return stored
    if spool != stream(writer.lines)[: len(spool)]:
        result.errors.append(f"{name}: the spool does not hold what the job wrote")
        return stored
    if len(spool) <= len(stored):
        return stored
    result.kept_in_spool += len(spool) - len(stored)
    return spool


def stdout_of(shown: dict, writer: Writer) -> bytes:
    path = writer.out / shown["jobOutputDirectoryPathSegment"] / "stdouterr" / "stdout.txt"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def settle_and_linger(
    result: FaultResult, lab: CliLab, name: str, writer: Writer, also: tuple[str, ...] = (), *, between=None
) -> dict | None:
    """The job once final (None: there is none), noting it stuck when it is not within
    SETTLE_SECONDS, or when a process of it (its writer, or one naming any of `also`) is still
    alive LINGER_SECONDS after. What the writer had written when the job was seen final is what
    stdout.txt must hold (writer.at_end). `between()` runs once the job is final, before the wait."""
    shown, settled = lab.settle(name, SETTLE_SECONDS)
    writer.at_end = writer.acked()
    if between is not None:
        between()
    if not settled:
        result.stuck.append(f"{name} ({shown['executionState']} after {SETTLE_SECONDS:.0f} s)")
        return None
    needles = (f"{writer.ack} ", *also)
    deadline = time.monotonic() + LINGER_SECONDS
    while (left := [pid for needle in needles for pid in pids_running(needle)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if left:
        state = shown["executionState"] if shown else "gone"
        commands = "; ".join(_command_line(pid) for pid in left)
        result.stuck.append(f"{name}: {state}, but these still ran {LINGER_SECONDS:.0f} s later: {commands}")
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return shown


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return f"pid {pid} (ended)"


def _errors_of(shown: dict) -> list[dict]:
    return (shown.get("executionInfo") or {}).get("errors") or []


def note_outcome(result: FaultResult, name: str, shown: dict | None, expected: set[str], *, count: bool = True) -> None:
    """Count the job's outcome (unless `count` is False: the caller counts it its own way); a
    failure must carry one of the `expected` error codes, and every error a clear message."""
    if count:
        result.outcomes[_outcome(shown)] += 1
    if shown is None:
        return
    codes = [error["code"] for error in _errors_of(shown)]
    if shown["executionState"] == "failed":
        result.failures.append(f"{name}: " + "; ".join(f"{e['code']}: {e['message']}" for e in _errors_of(shown)))
    if shown["executionState"] == "failed" and not (set(codes) & expected):
        result.errors.append(f"{name}: failed with {codes or 'no error'}; expected one of {sorted(expected)}")
    for error in _errors_of(shown):
        if not error.get("message") or "Unexpected error" in error["message"] or "Traceback" in error["message"]:
            result.errors.append(f"{name}: unclear error {error}")


def check_state(result: FaultResult, lab: CliLab) -> None:
    with sqlite3.connect(lab.home / "state.db") as db:
        integrity = db.execute("pragma integrity_check").fetchone()[0]
    if integrity != "ok":
        result.errors.append(f"state.db integrity_check: {integrity}")


# -- SIGKILL of the CLI, the runner, the agent ---------------------------------------------------------


def kill_create(work: Path, tries: int, *, seed: int = 1) -> FaultResult:
    """SIGKILL `job create` at a random moment of its run (0 to 1.5 times how long one takes, or
    every other try 0.6 to 1 times that):
    afterwards there is no job, or one that ends (ran, or failed JobStartFailed), and the one-node
    cluster's queue goes on (a job left queued for good would hold every later try: stuck)."""
    rng = random.Random(seed)
    result = FaultResult("SIGKILL job create")
    started = time.monotonic()
    lab = CliLab(work)
    timing = Writer(work / "timing", 40, 0.0, gated=False)
    before = time.monotonic()
    lab.create("timing", timing.properties())
    span = time.monotonic() - before
    lab.settle("timing", SETTLE_SECONDS)
    for number in range(tries):
        name = f"create{number}"
        writer = Writer(work / name, 200, 0.2, gated=False)
        process = subprocess.Popen(
            lab.create_argv(name, writer.properties()),
            env=lab.env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # Every other try in the last 40% of the run, where it writes the job and starts its runner.
        time.sleep(rng.uniform(0, 1.5 * span) if number % 2 == 0 else rng.uniform(0.6 * span, span))
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        _out, err = process.communicate(timeout=60)
        if process.returncode not in (0, -signal.SIGKILL):
            result.errors.append(f"{name}: job create exited {process.returncode}: {err.decode()[-300:]}")
        result.tries += 1
        shown = settle_and_linger(result, lab, name, writer, (f"/{name} ",))
        note_outcome(result, name, shown, {"JobStartFailed"})
        if shown is not None and shown["executionState"] == "succeeded":
            check_bytes(result, name, stdout_of(shown, writer), writer)
    check_state(result, lab)
    result.seconds = time.monotonic() - started
    return result


def _kill_job_process(
    work: Path, tries: int, *, seed: int, kind: str, needle: str, expected: set[str], agent: bool
) -> FaultResult:
    """SIGKILL the job's process whose command line holds `needle` and its job id, at a random
    moment from when it appears to a little after the job has written all its lines."""
    rng = random.Random(seed)
    result = FaultResult(kind)
    started = time.monotonic()
    lab = CliLab(work)
    for number in range(tries):
        name = f"{kind.split()[-1]}{number}"
        writer = Writer(work / name, 400, 0.5)
        job_id = lab.create(name, writer.properties())["id"]
        deadline = time.monotonic() + 30
        pids = []
        while not pids and time.monotonic() < deadline:
            pids = pids_running(f"{needle} {job_id} ")
            time.sleep(0.01)
        result.tries += 1
        if not pids:
            result.errors.append(f"{name}: no process running {needle!r} appeared within 30 s")
            writer.release()
            continue
        time.sleep(rng.uniform(0, writer.seconds + 0.3))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[0], signal.SIGKILL)
        shown = settle_and_linger(result, lab, name, writer, (f"{job_id} ",))
        writer.release()
        note_outcome(result, name, shown, expected)
        if shown is not None:
            kept = len(_spool_bytes(lab, name)) if agent else None
            check_bytes(result, name, stdout_of(shown, writer), writer, kept=kept)
    check_state(result, lab)
    result.seconds = time.monotonic() - started
    return result


def kill_runner(work: Path, tries: int, *, seed: int = 2) -> FaultResult:
    """SIGKILL the job's runner: the next look fails the job (JobRunnerDied) and stops its
    processes; the agent, alive, ships all the job wrote."""
    needle, kind = "batchai_cli.engines.runner", "SIGKILL runner"
    return _kill_job_process(work, tries, seed=seed, kind=kind, needle=needle, expected={"JobRunnerDied"}, agent=False)


def kill_agent(work: Path, tries: int, *, seed: int = 3) -> FaultResult:
    """SIGKILL the job's agent: the runner fails the job (NodeAgentDied), stops its processes and
    ships what the node's spool holds."""
    needle, kind = "batchai_cli.agent run", "SIGKILL agent"
    return _kill_job_process(work, tries, seed=seed, kind=kind, needle=needle, expected={"NodeAgentDied"}, agent=True)


# -- Azurite stopped -----------------------------------------------------------------------------------


def _blob_job(azurite, container: str, writer: Writer) -> dict:
    """WRITER with stdout on the container (shipped as it runs) and the ack file copied to an
    output folder on it at the end (a staged output, uploaded when the job ends)."""
    volume = {
        "accountName": azurite.account_name,
        "containerName": container,
        "credentials": {"accountKey": azurite.account_key},
        "relativeMountPath": "bfs",
    }
    properties = writer.properties(
        stdOutErrPathPrefix="$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs",
        outputDirectories=[{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs"}],
        mountVolumes={"azureBlobFileSystems": [volume]},
    )
    toolkit = properties["customToolkitSettings"]
    toolkit["commandLine"] += f" && cp {writer.ack} $AZ_BATCHAI_OUTPUT_OUT/ack.txt"
    return properties


def _read_blob(store, key: str) -> bytes:
    try:
        return store.read(key)
    except FileNotFoundError:
        return b""


def azurite_outage_jobs(work: Path, *, outage: float = 20.0) -> FaultResult:
    """Azurite stopped for `outage` seconds while two jobs ship their stdout to Blob: one that ends
    (and uploads its staged output) during the outage, one that writes through it. Each must end
    succeeded with every byte in the container, or failed with a clear error."""
    from batchai_cli.storage.blob import BlobStore
    from batchai_cli.storage.credentials import parse_connection_string
    from tests.fixtures.azurite import StoppableAzurite

    result = FaultResult(f"Azurite stopped {outage:g} s during jobs")
    started = time.monotonic()
    azurite = StoppableAzurite(work / "azurite")
    store = BlobStore("faults", credentials=parse_connection_string(azurite.connection_string))
    try:
        store.create_root()
        env = {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, "BATCHAI_VOLUMES": "copy"}
        lab = CliLab(work, nodes=2, env=env)
        writers = {
            "ends-in-outage": Writer(work / "short", 1000, 1.0, gated=False),
            "writes-through": Writer(work / "long", int(1000 * (outage + 6)), outage + 6, gated=False),
        }
        for name, writer in writers.items():
            lab.create(name, _blob_job(azurite, "faults", writer))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(w.acked() for w in writers.values()):
            time.sleep(0.1)
        time.sleep(0.5)
        away = time.monotonic()
        azurite.outage(outage)
        result.kind += f" (away {time.monotonic() - away:.1f} s)"
        for name, writer in writers.items():
            result.tries += 1
            shown = settle_and_linger(result, lab, name, writer)
            note_outcome(result, name, shown, {"LogShippingFailed", "OutputUploadFailed"})
            if shown is None:
                continue
            base = f"{shown['jobOutputDirectoryPathSegment']}"
            stored = _read_blob(store, f"{base}/stdouterr/stdout.txt")
            check_bytes(result, name, with_spool(result, lab, name, shown, writer, stored), writer)
            if shown["executionState"] == "succeeded" and _read_blob(store, f"{base}/outputs/ack.txt") != (
                writer.ack.read_bytes()
            ):
                result.errors.append(f"{name}: succeeded, but its output ack.txt is not what the job wrote")
        check_state(result, lab)
    finally:
        store.close()
        azurite.stop()
    result.seconds = time.monotonic() - started
    return result


def azurite_outage_upload(
    work: Path, *, outage: float = 20.0, files: int = 160, patience: float | None = None
) -> FaultResult:
    """Azurite stopped for `outage` seconds during `storage blob upload-batch` of `files` files of
    512 KiB and one of 12 MiB (in blocks). Within its patience (BATCHAI_STORAGE_PATIENCE, `patience`;
    else the CLI's 60 s) it waits the outage out, saying so, and uploads every file whole. An outage
    longer than that fails it saying how many files did not go, leaving no torn blob, and the same
    command again with --skip-unchanged finishes it."""
    from batchai_cli.cli.storage import TRANSFER_PATIENCE
    from batchai_cli.storage.blob import BlobStore
    from batchai_cli.storage.credentials import parse_connection_string
    from tests.fixtures.azurite import StoppableAzurite

    waits = TRANSFER_PATIENCE if patience is None else patience
    result = FaultResult(f"Azurite stopped {outage:g} s during upload-batch, patience {waits:g} s")
    started = time.monotonic()
    rng = random.Random(4)
    source = work / "source"
    source.mkdir(parents=True)
    for number in range(files):
        (source / f"part-{number:03d}.bin").write_bytes(rng.randbytes(512 * 1024))
    (source / "big.bin").write_bytes(rng.randbytes(12 * 1024 * 1024))
    azurite = StoppableAzurite(work / "azurite")
    store = BlobStore("uploads", credentials=parse_connection_string(azurite.connection_string))
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string, "NO_COLOR": "1"}
    if patience is not None:
        env["BATCHAI_STORAGE_PATIENCE"] = str(patience)
    argv = [sys.executable, "-m", "batchai_cli", "storage", "blob", "upload-batch", "-s", str(source)]
    argv += ["-d", "uploads", "--create-container", "--max-connections", "2", "--no-progress", "-o", "none"]
    try:
        upload = subprocess.Popen(argv, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while upload.poll() is None and not _any_blob(store) and time.monotonic() < deadline:
            time.sleep(0.02)
        if upload.poll() is not None:
            result.errors.append("upload-batch had ended before the outage began: make the source larger")
        away = time.monotonic()
        azurite.outage(outage)
        result.kind += f" (away {time.monotonic() - away:.1f} s)"
        try:
            _out, err = upload.communicate(timeout=outage + 300)
        except subprocess.TimeoutExpired:
            upload.kill()
            result.stuck.append(f"upload-batch still ran {outage + 300:.0f} s after the outage began")
            _out, err = upload.communicate()
        result.tries += 1
        sizes = {path.name: path.stat().st_size for path in source.iterdir()}
        result.bytes_written = sum(sizes.values())
        failed = _failed_count(err)
        if outage < waits - 10 and upload.returncode != 0:
            result.errors.append(f"upload-batch failed during an outage well inside its patience: {err[-500:]}")
        if outage < waits - 10 and "does not answer" not in err:
            result.errors.append("upload-batch waited out the outage without saying why it stalled")
        if upload.returncode == 0:
            result.outcomes["succeeded"] += 1
        elif failed is not None and "Traceback" not in err and "Unexpected error" not in err:
            result.outcomes[f"failed, {failed} of {len(sizes)} files named"] += 1
        else:
            result.errors.append(f"upload-batch exited {upload.returncode} without a clear error: {err[-500:]}")
            failed = 0
        missing = _check_uploaded(result, store, source, sizes)
        if len(missing) > (failed or 0):  # a file it said it uploaded is not there, whole
            result.bytes_lost += sum(sorted(sizes[name] for name in missing)[: len(missing) - (failed or 0)])
        if upload.returncode != 0:  # as the error says: the same command again finishes the job
            again = subprocess.run([*argv, "--skip-unchanged"], env=env, cwd=REPO, capture_output=True, text=True)
            result.tries += 1
            result.outcomes["run again: " + ("succeeded" if again.returncode == 0 else "failed")] += 1
            missing = _check_uploaded(result, store, source, sizes)
            if again.returncode != 0 or missing:
                result.errors.append(f"upload-batch run again: exit {again.returncode}, {len(missing)} files missing")
                result.bytes_lost += sum(sizes[name] for name in missing)
    finally:
        store.close()
        azurite.stop()
    result.seconds = time.monotonic() - started
    return result


def _any_blob(store) -> bool:
    try:
        return next(iter(store.walk("", missing_ok=True)), None) is not None
    except Exception:  # the container is not there yet
        return False


def _failed_count(stderr: str) -> int | None:
    import re

    found = re.search(r"(\d+) of \d+ files failed to upload", stderr)
    return int(found.group(1)) if found else None


def _check_uploaded(result: FaultResult, store, source: Path, sizes: dict[str, int]) -> list[str]:
    """The files not in the container; a blob that is there but differs from its file is an error."""
    missing = []
    for name in sorted(sizes):
        stored = _read_blob(store, name) if _exists(store, name) else None
        if stored is None:
            missing.append(name)
        elif stored != (source / name).read_bytes():
            result.errors.append(f"upload-batch: blob {name} differs from its file (torn)")
            missing.append(name)
    return missing


def _exists(store, key: str) -> bool:
    try:
        store.stat(key)
    except FileNotFoundError:
        return False
    return True


# -- full disks -----------------------------------------------------------------------------------------


def _declared_lost(shown: dict) -> int:
    """The bytes the job's errors say a full disk lost ("the N bytes written after it are lost")."""
    import re

    return sum(
        int(count)
        for error in _errors_of(shown)
        for count in re.findall(r"the (\d+) bytes written after it are lost", error.get("message") or "")
    )


def disk_full_home(work: Path, tries: int) -> FaultResult:
    """$BATCHAI_HOME (state.db, the spool, the bundles) on a 2 MB disk, in turn: a job printing 4.8 MB,
    more than the disk holds; the disk filled by something else while the job writes; the disk
    filled before `job create`, which must then fail saying so (or create a job that ends). A job
    must end, succeeded with every byte in its (roomy) output folder, or failed naming the full disk;
    what its errors say is lost is counted apart, anything else missing is lost."""
    from tests.fixtures.disks import fill, small_disk

    result = FaultResult("disk full under $BATCHAI_HOME")
    started = time.monotonic()
    for number in range(tries):
        name = f"home{number}"
        variant = ("prints more", "filled while writing", "filled before create")[number % 3]
        with small_disk(work / name / "home") as home:
            lab = CliLab(work / name, home=home, env={"BATCHAI_LOG_RETRY_SECONDS": "2"})
            writer = Writer(work / name / "job", 75_000 if variant == "prints more" else 4000, 2.0, gated=False)
            result.tries += 1
            if variant == "filled before create":
                fill(home)
                argv = lab.create_argv(name, writer.properties())
                done = subprocess.run(argv, env=lab.env, cwd=REPO, capture_output=True, text=True, timeout=120)
                os.unlink(home / "filler")
                if done.returncode != 0:
                    clear = "disk that holds it is full" in done.stderr and "Unexpected error" not in done.stderr
                    if not clear:
                        result.errors.append(f"{name}: job create on a full home said: {done.stderr.strip()[-300:]}")
                    result.outcomes["create refused: disk full"] += 1
                    shown = settle_and_linger(result, lab, name, writer)
                    if shown is not None and shown["executionState"] == "succeeded":
                        check_bytes(result, name, stdout_of(shown, writer), writer)
                    continue
            else:
                lab.create(name, writer.properties())
            if variant == "filled while writing":
                deadline = time.monotonic() + 30
                while not writer.acked() and time.monotonic() < deadline:
                    time.sleep(0.05)
                fill(home)
            shown = settle_and_linger(result, lab, name, writer)
            note_outcome(result, name, shown, {"DiskFull", "LogShippingFailed"})
            if shown is not None:
                check_bytes(result, name, stdout_of(shown, writer), writer, declared=_declared_lost(shown))
                if shown["executionState"] == "failed" and not any(
                    "is full (No space left on device)" in error["message"] for error in _errors_of(shown)
                ):
                    result.errors.append(f"{name}: failed without saying the disk is full: {_errors_of(shown)}")
    result.seconds = time.monotonic() - started
    return result


def disk_full_logs(work: Path, tries: int) -> FaultResult:
    """stdOutErrPathPrefix on a 2 MB disk. Odd tries: a job printing 4.8 MB there, which fails
    LogShippingFailed naming the disk and keeps every byte in the node's spool; even tries: the disk
    filled by something else while the job writes and freed 2 s later, which the shipper rides
    out (succeeded, every byte there)."""
    from tests.fixtures.disks import fill, small_disk

    result = FaultResult("disk full under the log folder")
    started = time.monotonic()
    lab = CliLab(work / "lab", env={"BATCHAI_LOG_RETRY_SECONDS": "2"})
    for number in range(tries):
        name = f"logs{number}"
        transient = number % 2 == 1
        with small_disk(work / f"logs{number}") as logs:
            writer = Writer(work / name, 8000 if transient else 75_000, 6.0 if transient else 2.0, gated=False)
            writer.out = logs
            lab.create(name, writer.properties())
            if transient:
                deadline = time.monotonic() + 30
                while not writer.acked() and time.monotonic() < deadline:
                    time.sleep(0.05)
                fill(logs)
                time.sleep(2)
                os.unlink(logs / "filler")
            result.tries += 1
            shown = settle_and_linger(result, lab, name, writer)
            note_outcome(result, name, shown, {"LogShippingFailed"})
            if shown is None:
                continue
            stored = stdout_of(shown, writer)
            check_bytes(result, name, with_spool(result, lab, name, shown, writer, stored), writer)
    check_state(result, lab)
    result.seconds = time.monotonic() - started
    return result


def _spool_bytes(lab: CliLab, name: str) -> bytes:
    spools = list((lab.home / "nodes").glob(f"*/jobs/ws/exp/{name}/spool/stdout.txt"))
    return spools[0].read_bytes() if spools else b""


# -- a slurmd killed -------------------------------------------------------------------------------------


def slurmd_killed(work: Path, slurm, tries: int, *, long_every: int = 0, seed: int = 5) -> FaultResult:
    """SIGKILL the slurmd of the node a one-node Slurm job runs on (the one the fixture started),
    at a random moment of the job, and start it again 2 to 8 s later: the job must end, succeeded
    with every byte, or failed with a clear reason. Every `long_every`-th try (0: none) keeps it
    down until Slurm has declared the node down (SlurmdTimeout) and the job ended with it: failed
    with the reason, and every byte written before then in storage. `slurm` is
    tests/fixtures/slurm.py's cluster; its nodes must not see the home (slurm.hidden)."""
    import json

    rng = random.Random(seed)
    result = FaultResult("slurmd killed")
    started = time.monotonic()
    shared = work / "shared"
    shared.mkdir(mode=0o700, parents=True, exist_ok=True)
    home = slurm.hidden / f"faults-{os.getpid()}-{int(time.time())}"
    env = {"BATCHAI_SHARED_DIR": str(shared), "SLURM_CONF": str(slurm.conf)}
    lab = CliLab(work, home=home, env=env)
    cluster_file = work / "cluster.json"
    cluster_file.write_text(json.dumps({"properties": {"engine": {"type": "slurm", "partition": "debug"}}}))
    lab.cluster("s", len(slurm.nodes), "-f", str(cluster_file))
    for number in range(tries):
        name = f"slurmd{number}"
        long = bool(long_every) and number % long_every == long_every - 1
        seconds = 60.0 if long else 8.0
        writer = Writer(work / name, int(1000 * seconds), seconds, gated=False)
        lab.create(name, writer.properties(), cluster="s")
        result.tries += 1
        deadline = time.monotonic() + 60
        while not writer.acked() and time.monotonic() < deadline:
            time.sleep(0.1)
        node = slurm.run("squeue", "-h", "-n", f"batchai-{name}", "-o", "%N").stdout.strip()
        if node not in slurm.nodes:
            result.errors.append(f"{name}: Slurm does not show it running on a node (squeue: {node!r})")
            continue
        time.sleep(rng.uniform(0, 2))
        slurm.kill_slurmd(node)
        if long:  # the job ends with the node, seen by the next look; then the node comes back
            shown = settle_and_linger(result, lab, name, writer, between=lambda node=node: slurm.start_slurmd(node))
            result.outcomes["kept down: " + _outcome(shown)] += 1
        else:
            time.sleep(rng.uniform(2, 8))
            slurm.start_slurmd(node)
            shown = settle_and_linger(result, lab, name, writer)
            result.outcomes["back in 2-8 s: " + _outcome(shown)] += 1
        note_outcome(result, name, shown, {"NodeAgentDied", "SlurmJobEnded"}, count=False)
        if shown is not None:
            check_bytes(result, name, stdout_of(shown, writer), writer)
        deadline = time.monotonic() + 60
        while slurm.node_states().get(node) != "idle" and time.monotonic() < deadline:
            time.sleep(0.2)
        if slurm.node_states().get(node) != "idle":
            result.errors.append(f"{name}: node {node} was not idle again 60 s after slurmd came back")
    result.seconds = time.monotonic() - started
    return result


def _outcome(shown: dict | None) -> str:
    if shown is None:
        return "no job"
    codes = [error["code"] for error in _errors_of(shown)]
    return shown["executionState"] + (f" {codes[0]}" if codes else "")


# -- all of them -----------------------------------------------------------------------------------------


def run_all(work: Path, *, kills: int, outage: float, disk_tries: int, slurmd_tries: int) -> list[FaultResult]:
    """Every kind, as `make soak` runs them: `kills` SIGKILLs each of job create, the runner and the
    agent; Azurite stopped `outage` s during jobs and during upload-batch; `disk_tries` full disks
    under the home and under a log folder each; `slurmd_tries` slurmds killed (every third kept
    down until Slurm declares the node down), on a Slurm cluster of its own."""
    from tests.fixtures.slurm import start_slurm, stop_slurm

    results = [
        kill_create(work / "create", kills),
        kill_runner(work / "runner", kills),
        kill_agent(work / "agent", kills),
        azurite_outage_jobs(work / "outage-jobs", outage=outage),
        azurite_outage_upload(work / "outage-upload", outage=outage),
        disk_full_home(work / "full-home", disk_tries),
        disk_full_logs(work / "full-logs", disk_tries),
    ]
    if slurmd_tries:
        slurm = start_slurm(work / "slurm")
        try:
            results.append(slurmd_killed(work / "slurmd", slurm, slurmd_tries, long_every=3))
        finally:
            stop_slurm(slurm)
    return results
