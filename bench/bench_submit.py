"""Submit-to-running latency of `batchai job create`, p50 and p99, on a local cluster and on a
Slurm partition next to a bare `sbatch --wrap` to the same partition (the engine's floor).

A job's command is a probe that writes time.time() to a file in a folder the benchmark reads;
a job's latency is that time minus time.time() just before its submitting command (a real
`batchai job create` process, as a user runs it; `sbatch` for the floor) was started. One clock.
Jobs run one at a time (each waits for the previous to end): on a 1-node local cluster in a
temporary $BATCHAI_HOME, then on a private Slurm cluster (tests/fixtures/slurm.py: its nodes
cannot see $BATCHAI_HOME), where batchai's jobs and bare sbatch jobs alternate. For the local
engine it also shows where the time goes, from the job's own reports: the runner's pid start
(/proc, 10 ms ticks), the runner's started report, the agent's execution.log notes. Prints
figures from this one run; asserts nothing; stops and removes everything it started.

    python bench/bench_submit.py [--jobs 20] [--skip-slurm] [--skip-local]

Goals (issue 11): local p50 under 0.3 s; slurm within 1.5x of bare sbatch (p50 and p99).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_stream import percentile  # noqa: E402

WS = ("-g", "bench", "-w", "ws")
JOB = (*WS, "-e", "exp")
CLUSTER = ("-s", "Standard_NC6", "-t", "1", "-u", "bench", "-p", "Passw0rd!")
GOAL_LOCAL = 0.3
GOAL_SLURM = 1.5
TIMEOUT = 60.0
PROBE = "import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))"


def cli() -> list[str]:
    """The console script a user runs (`batchai`), else the module."""
    script = Path(sys.executable).parent / "batchai"
    return [str(script)] if script.exists() else [sys.executable, "-m", "batchai_cli"]


def batchai(env: dict, *args: str) -> str:
    done = subprocess.run([*cli(), *args], env=env, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"batchai {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


# The probe's interpreter, by its real path: `python3` on PATH may be a shim (pyenv's is a bash
# script that costs 0.3 s), which would hide batchai's own cost. The same on both engines.
PYTHON = os.path.realpath(sys.executable)


def probe_command(mark: Path) -> str:
    """The job's command line: the probe."""
    return f"{shlex.quote(PYTHON)} -c {shlex.quote(PROBE)} {shlex.quote(str(mark))}"


def read_mark(mark: Path, deadline: float) -> float:
    """The time the probe wrote (it may be caught half-written: read again)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return float(mark.read_text())
        time.sleep(0.02)
    raise TimeoutError(f"{mark} was not written within {TIMEOUT:.0f} s")


def stamp_of(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def tick_epoch() -> tuple[float, float]:
    """(boot time as an epoch, clock ticks per second): /proc's process start times to time.time()."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME), float(os.sysconf("SC_CLK_TCK"))


def agent_notes(stdouterr: Path) -> dict[str, float]:
    """When the agent wrote its first note, and when it started the command (execution.log)."""
    notes: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in (stdouterr / "execution.log").read_text().splitlines():
            stamp, _, message = line.partition(" ")
            if "agent" not in notes:
                notes["agent"] = stamp_of(stamp)
            if message.startswith("Starting (") and "command" not in notes:
                notes["command"] = stamp_of(stamp)
    return notes


def bundle_started(shared: Path, body: dict) -> float | None:
    from batchai_cli import bundle

    path = shared / "jobs" / bundle.job_uuid(body) / bundle.STARTED
    with contextlib.suppress(OSError, ValueError):
        return stamp_of(json.loads(path.read_text())["startTime"])
    return None


# -- one job ------------------------------------------------------------------------------------------


def submit_batchai(env: dict, work: Path, name: str, cluster: str, mark: Path, out: Path) -> tuple[float, float, dict]:
    """`batchai job create` of a probe job, default output (JSON) as a user sees it: (its start,
    its exit, the job's body)."""
    job_file = work / f"{name}.json"
    properties = {
        "nodeCount": 1,
        "stdOutErrPathPrefix": str(out),
        "customToolkitSettings": {"commandLine": probe_command(mark)},
    }
    job_file.write_text(json.dumps({"properties": properties}))
    argv = [*cli(), "job", "create", *JOB, "-n", name, "-c", cluster, "-f", str(job_file)]
    start = time.time()
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    ended = time.time()
    if done.returncode != 0:
        raise SystemExit(f"batchai job create failed ({done.returncode}): {done.stderr.strip()}")
    return start, ended, json.loads(done.stdout)


# -- local ----------------------------------------------------------------------------------------------


def local_run(work: Path, jobs: int) -> tuple[list[float], dict[str, list[float]]]:
    """N probe jobs one after the other on a 1-node local cluster; latencies and their phases."""
    home, marks, out = work / "local-home", work / "local-marks", work / "local-out"
    for folder in (marks, out):
        folder.mkdir()
    env = environment(home)
    os.environ.update({"BATCHAI_HOME": str(home)})
    os.environ.pop("BATCHAI_SHARED_DIR", None)
    make_workspace(env)
    batchai(env, "cluster", "create", *WS, "-n", "c", *CLUSTER, "-o", "none")
    from batchai_cli import ids
    from batchai_cli.procs import process_alive
    from batchai_cli.state import open_state

    boot, ticks = tick_epoch()
    latencies: list[float] = []
    phases: dict[str, list[float]] = {name: [] for name in LOCAL_PHASES}
    for index in range(jobs):
        name = f"local-{index:03d}"
        mark = marks / name
        start, cli_end, body = submit_batchai(env, work, name, "c", mark, out)
        rid = ids.parse(body["id"], expect="job")
        try:
            ran = read_mark(mark, time.monotonic() + TIMEOUT)
        except TimeoutError:
            batchai(env, "job", "terminate", *JOB, "-n", name, "-y", "-o", "none")
            raise
        latencies.append(ran - start)
        db = open_state()
        try:
            runner = wait_ended(db, rid.key)
        finally:
            db.close()
        if runner.get("pid"):  # the runner folds the end, then exits: wait for it, so jobs never overlap
            deadline = time.monotonic() + TIMEOUT
            while process_alive(runner["pid"], runner.get("start")) and time.monotonic() < deadline:
                time.sleep(0.02)
        points = {
            "start": start,
            "runner": boot + runner["start"] / ticks if runner.get("start") else None,
            "started": bundle_started(home / "shared", body),
            **agent_notes(out / body["jobOutputDirectoryPathSegment"] / "stdouterr"),
            "ran": ran,
        }
        phases["cli"].append(cli_end - start)
        for label, (first, last) in LOCAL_SPANS.items():
            if points.get(first) is not None and points.get(last) is not None:
                phases[label].append(points[last] - points[first])
    return latencies, phases


LOCAL_SPANS = {
    "cli->runner": ("start", "runner"),
    "runner->started": ("runner", "started"),
    "started->agent": ("started", "agent"),
    "agent->launch": ("agent", "command"),
    "launch->ran": ("command", "ran"),
}
LOCAL_PHASES = ("cli", *LOCAL_SPANS)
PHASE_TEXT = {
    "cli": "the `batchai job create` process, start to exit",
    "cli->runner": "CLI start-up, checks, state.db; forks the runner (/proc, 10 ms ticks)",
    "runner->started": "runner start-up (python, imports), queue, launch.json; started report",
    "started->agent": "agent start-up (python, imports), log shipper; first execution.log note",
    "agent->launch": "agent: folders, volumes, variables; 'Starting' note",
    "launch->ran": "the command: bash + python start-up of the probe",
}


def wait_ended(db, job_key: str) -> dict:
    """Wait until the job's run has left the active phases; its runner handle."""
    from batchai_cli.state import ACTIVE_PHASES

    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        run = db.get_run(job_key)
        if run is not None and run["phase"] not in ACTIVE_PHASES:
            return run.get("runner") or {}
        time.sleep(0.05)
    raise TimeoutError(f"job {job_key} did not end within {TIMEOUT:.0f} s")


def environment(home: Path, **extra: str) -> dict:
    env = {**os.environ, "BATCHAI_HOME": str(home), "NO_COLOR": "1", **extra}
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "BATCHAI_OUTPUT", "BATCHAI_SHARED_DIR"):
        if name not in extra:
            env.pop(name, None)
    return env


def make_workspace(env: dict) -> None:
    batchai(env, "workspace", "create", "-g", "bench", "-n", "ws", "-o", "none")
    batchai(env, "experiment", "create", *WS, "-n", "exp", "-o", "none")


def floors(work: Path, runs: int) -> dict[str, list[float]]:
    """What a job's chain of processes costs at the least: the probe alone, and the CLI's start-up."""
    marks = work / "floor-marks"
    marks.mkdir()
    result: dict[str, list[float]] = {"probe": [], "help": []}
    for index in range(runs):
        mark = marks / str(index)
        start = time.time()
        subprocess.run(["bash", "-c", probe_command(mark)], check=True)
        result["probe"].append(float(mark.read_text()) - start)
        start = time.time()
        subprocess.run([*cli(), "--help"], capture_output=True, check=True)
        result["help"].append(time.time() - start)
    return result


# -- slurm ----------------------------------------------------------------------------------------------


def slurm_run(work: Path, jobs: int) -> tuple[list[float], list[float], dict[str, list[float]]] | str:
    """N batchai jobs on a Slurm partition, alternating with N bare sbatch jobs to it."""
    if shutil.which("slurmctld", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        return "Slurm is not installed (apt-get install -y slurm-wlm munge): skipped."
    from tests.fixtures.slurm import start_slurm, stop_slurm

    slurm = start_slurm(work / "slurm")
    try:
        return slurm_jobs(work, slurm, jobs)
    finally:
        stop_slurm(slurm)


def slurm_jobs(work: Path, slurm, jobs: int) -> tuple[list[float], list[float], dict[str, list[float]]]:
    home = slurm.hidden / "bench-home"  # the nodes cannot see it, as on a cluster of many machines
    home.mkdir(mode=0o700)
    shared, marks, out = work / "slurm-shared", work / "slurm-marks", work / "slurm-out"
    shared.mkdir(mode=0o700)
    for folder in (marks, out):
        folder.mkdir()
    env = environment(home, SLURM_CONF=str(slurm.conf), BATCHAI_SHARED_DIR=str(shared))
    os.environ.update({"BATCHAI_HOME": str(home), "BATCHAI_SHARED_DIR": str(shared)})
    make_workspace(env)
    cluster_file = work / "slurm-cluster.json"
    cluster_file.write_text(json.dumps({"properties": {"engine": {"type": "slurm", "partition": "debug"}}}))
    batchai(env, "cluster", "create", *WS, "-n", "s", *CLUSTER, "-f", str(cluster_file), "-o", "none")
    ours: list[float] = []
    bare: list[float] = []
    phases: dict[str, list[float]] = {name: [] for name in SLURM_PHASES}
    for index in range(jobs):
        mark = marks / f"bare-{index:03d}"
        start = time.time()
        subprocess.run(
            ["sbatch", "-p", "debug", "-o", "/dev/null", "--wrap", probe_command(mark)],
            env=env,
            capture_output=True,
            check=True,
        )
        bare.append(read_mark(mark, time.monotonic() + TIMEOUT) - start)
        wait_queue_empty(slurm)
        name = f"slurm-{index:03d}"
        mark = marks / name
        start, cli_end, body = submit_batchai(env, work, name, "s", mark, out)
        ran = read_mark(mark, time.monotonic() + TIMEOUT)
        ours.append(ran - start)
        wait_queue_empty(slurm)
        points = {
            "start": start,
            "cli": cli_end,
            "started": bundle_started(shared, body),
            **agent_notes(out / body["jobOutputDirectoryPathSegment"] / "stdouterr"),
            "ran": ran,
        }
        for label, (first, last) in SLURM_SPANS.items():
            if points.get(first) is not None and points.get(last) is not None:
                phases[label].append(points[last] - points[first])
    return ours, bare, phases


SLURM_SPANS = {
    "cli": ("start", "cli"),
    "cli->started": ("cli", "started"),
    "started->agent": ("started", "agent"),
    "agent->launch": ("agent", "command"),
    "launch->ran": ("command", "ran"),
}
SLURM_PHASES = tuple(SLURM_SPANS)
SLURM_TEXT = {
    "cli": "the `batchai job create` process (sbatch inside), start to exit",
    "cli->started": "Slurm starts the batch script; runner start-up; started report",
    "started->agent": "srun step; agent start-up; first execution.log note",
    "agent->launch": "agent: folders, volumes, variables; 'Starting' note",
    "launch->ran": "the command: bash + python start-up of the probe",
}


def wait_queue_empty(slurm) -> None:
    """Until Slurm's queue is empty (completing jobs included): the next job finds the nodes idle."""
    deadline = time.monotonic() + TIMEOUT
    while slurm.run("squeue", "-h").stdout.strip():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Slurm's queue did not empty within {TIMEOUT:.0f} s")
        time.sleep(0.1)


# -- the table ------------------------------------------------------------------------------------------


def line(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<34} (no samples)"
    return (
        f"  {label:<34} p50 {percentile(values, 0.5):6.3f} s   p99 {percentile(values, 0.99):6.3f} s"
        f"   min {min(values):6.3f} s   n {len(values)}"
    )


def breakdown(phases: dict[str, list[float]], texts: dict[str, str]) -> None:
    print("  where the time goes (median of each span):")
    for label, values in phases.items():
        shown = f"{statistics.median(values):6.3f} s" if values else "     -  "
        print(f"    {label:<17} {shown}  {texts[label]}")


def report_local(latencies: list[float], phases: dict[str, list[float]], floor: dict[str, list[float]]) -> None:
    print("local cluster (1 node), job create -> the job's command running")
    print(line("batchai job create", latencies))
    p50 = percentile(latencies, 0.5)
    verdict = "met" if p50 < GOAL_LOCAL else f"missed by {p50 - GOAL_LOCAL:.3f} s (x{p50 / GOAL_LOCAL:.1f})"
    print(f"  goal p50 < {GOAL_LOCAL} s: {verdict}")
    breakdown(phases, PHASE_TEXT)
    print("  floors, same run:")
    print(line("probe alone (bash + python)", floor["probe"]))
    print(line("batchai --help (CLI start-up)", floor["help"]))


def report_slurm(ours: list[float], bare: list[float], phases: dict[str, list[float]]) -> None:
    print("slurm partition (private cluster, 2 nodes), submit -> the job's command running")
    print(line("batchai job create", ours))
    print(line("bare sbatch --wrap", bare))
    ratios = {q: percentile(ours, q) / percentile(bare, q) for q in (0.5, 0.99)}
    print(
        f"  batchai / bare sbatch: p50 x{ratios[0.5]:.2f}, p99 x{ratios[0.99]:.2f}"
        f"   goal within x{GOAL_SLURM}: {'met' if max(ratios.values()) <= GOAL_SLURM else 'missed'}"
    )
    breakdown(phases, SLURM_TEXT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="Jobs per engine (and bare sbatch jobs).")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-slurm", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="batchai-bench-submit-"))
    saved = {name: os.environ.get(name) for name in ("BATCHAI_HOME", "BATCHAI_SHARED_DIR")}
    try:
        print(f"{args.jobs} jobs per engine, one at a time; latency = the command's time.time() - submit start.")
        print()
        if not args.skip_local:
            latencies, phases = local_run(work, args.jobs)
            report_local(latencies, phases, floors(work, min(args.jobs, 10)))
            print()
        if not args.skip_slurm:
            result = slurm_run(work, args.jobs)
            if isinstance(result, str):
                print(f"slurm: {result}")
            else:
                report_slurm(*result)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
