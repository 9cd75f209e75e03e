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

LOCAL_SPANS = {
    "cli": ("start", "cli", "the `batchai job create` process, start to exit"),
    "cli->runner": ("start", "runner", "CLI start-up, checks, state.db; forks the runner (/proc, 10 ms ticks)"),
    "runner->started": ("runner", "started", "runner start-up (python, imports), queue, launch.json; started report"),
    "started->agent": ("started", "agent", "agent start-up (python, imports), log shipper; first execution.log note"),
    "agent->launch": ("agent", "command", "agent: folders, volumes, variables; its 'Starting' note"),
    "launch->ran": ("command", "ran", "the command: bash + python start-up of the probe"),
}


def local_run(work: Path, jobs: int, warmup: int) -> list[dict]:
    """Probe jobs one after the other on a 1-node local cluster; each job's points in time."""
    home, marks, out = work / "local-home", work / "local-marks", work / "local-out"
    for folder in (marks, out):
        folder.mkdir()
    env = environment(home)
    os.environ["BATCHAI_HOME"] = str(home)  # for this process's own reads of state.db and bundles
    os.environ.pop("BATCHAI_SHARED_DIR", None)
    make_workspace(env)
    batchai(env, "cluster", "create", *WS, "-n", "c", *CLUSTER, "-o", "none")
    results = [local_job(env, work, f"local-{index:03d}", marks, out) for index in range(warmup + jobs)]
    return results[warmup:]


def local_job(env: dict, work: Path, name: str, marks: Path, out: Path) -> dict:
    """One job, from `job create` to its runner's exit (so that jobs never overlap)."""
    from batchai_cli import ids
    from batchai_cli.procs import process_alive
    from batchai_cli.state import open_state

    mark = marks / name
    start, cli_end, body = submit_batchai(env, work, name, "c", mark, out)
    try:
        ran = read_mark(mark, time.monotonic() + TIMEOUT)
    except TimeoutError:
        batchai(env, "job", "terminate", *JOB, "-n", name, "-y", "-o", "none")
        raise
    db = open_state()
    try:
        runner = wait_ended(db, ids.parse(body["id"], expect="job").key)
    finally:
        db.close()
    deadline = time.monotonic() + TIMEOUT
    while runner.get("pid") and process_alive(runner["pid"], runner.get("start")) and time.monotonic() < deadline:
        time.sleep(0.02)  # the runner folds the job's end into state.db, then exits
    boot, ticks = tick_epoch()
    return {
        "start": start,
        "cli": cli_end,
        "runner": boot + runner["start"] / ticks if runner.get("start") else None,
        "started": bundle_started(Path(os.environ["BATCHAI_HOME"]) / "shared", body),
        **agent_notes(out / body["jobOutputDirectoryPathSegment"] / "stdouterr"),
        "ran": ran,
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


def bytecode_cache(work: Path) -> None:
    """Let every process of the run (CLI, runner, agent; the Slurm nodes too, through sbatch's
    --export=ALL) keep compiled bytecode, in a folder of the run's own: an installed batchai has
    its .pyc files, but an editable install under PYTHONDONTWRITEBYTECODE compiles batchai_cli's
    sources again in each of them."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")


def make_workspace(env: dict) -> None:
    batchai(env, "workspace", "create", "-g", "bench", "-n", "ws", "-o", "none")
    batchai(env, "experiment", "create", *WS, "-n", "exp", "-o", "none")


def floors(work: Path, runs: int) -> dict[str, list[float]]:
    """What a job's chain of processes costs at the least: the probe alone, and the CLI's start-up."""
    marks = work / "floor-marks"
    marks.mkdir()
    result: dict[str, list[float]] = {"probe alone (bash + python)": [], "batchai --help (CLI start-up)": []}
    for index in range(runs):
        mark = marks / str(index)
        start = time.time()
        subprocess.run(["bash", "-c", probe_command(mark)], check=True)
        result["probe alone (bash + python)"].append(float(mark.read_text()) - start)
        start = time.time()
        subprocess.run([*cli(), "--help"], capture_output=True, check=True)
        result["batchai --help (CLI start-up)"].append(time.time() - start)
    return result


# -- slurm ----------------------------------------------------------------------------------------------

SLURM_SPANS = {
    "cli": ("start", "cli", "the `batchai job create` process (sbatch inside), start to exit"),
    "cli->started": ("cli", "started", "Slurm starts the batch script; runner start-up; started report"),
    "started->agent": ("started", "agent", "the srun step; agent start-up; first execution.log note"),
    "agent->launch": ("agent", "command", "agent: folders, volumes, variables; its 'Starting' note"),
    "launch->ran": ("command", "ran", "the command: bash + python start-up of the probe"),
}
BARE_SPANS = {
    "sbatch": ("start", "cli", "the bare `sbatch --wrap` process, start to exit"),
    "sbatch->ran": ("cli", "ran", "Slurm starts the batch script; bash + python start-up of the probe"),
}


def slurm_run(work: Path, jobs: int, warmup: int) -> tuple[list[dict], list[dict]] | str:
    """batchai jobs on a Slurm partition, alternating with bare sbatch jobs to it, one at a time;
    each job's points in time (batchai's, bare sbatch's), or why it could not run."""
    if shutil.which("slurmctld", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
        return "Slurm is not installed (apt-get install -y slurm-wlm munge): skipped."
    from tests.fixtures.slurm import start_slurm, stop_slurm

    slurm = start_slurm(work / "slurm")
    try:
        env = slurm_lab(work, slurm)
        ours, bare = [], []
        for index in range(warmup + jobs):
            bare.append(bare_job(env, slurm, work / "slurm-marks" / f"bare-{index:03d}"))
            ours.append(slurm_job(env, slurm, work, f"slurm-{index:03d}"))
        return ours[warmup:], bare[warmup:]
    finally:
        stop_slurm(slurm)


def slurm_lab(work: Path, slurm) -> dict:
    """A workspace with cluster "s" on the partition debug, in a $BATCHAI_HOME the nodes cannot
    see (as on a cluster of many machines), with the shared folder apart; the CLI's environment."""
    home = slurm.hidden / "bench-home"
    home.mkdir(mode=0o700)
    shared = work / "slurm-shared"
    shared.mkdir(mode=0o700)
    for folder in ("slurm-marks", "slurm-out"):
        (work / folder).mkdir()
    env = environment(home, SLURM_CONF=str(slurm.conf), BATCHAI_SHARED_DIR=str(shared))
    os.environ.update({"BATCHAI_HOME": str(home), "BATCHAI_SHARED_DIR": str(shared)})
    make_workspace(env)
    cluster_file = work / "slurm-cluster.json"
    cluster_file.write_text(json.dumps({"properties": {"engine": {"type": "slurm", "partition": "debug"}}}))
    batchai(env, "cluster", "create", *WS, "-n", "s", *CLUSTER, "-f", str(cluster_file), "-o", "none")
    return env


def bare_job(env: dict, slurm, mark: Path) -> dict:
    """The engine's floor: the probe through a bare sbatch --wrap to the same partition."""
    start = time.time()
    subprocess.run(
        ["sbatch", "-p", "debug", "-o", "/dev/null", "--wrap", probe_command(mark)],
        env=env,
        capture_output=True,
        check=True,
    )
    points = {"start": start, "cli": time.time(), "ran": read_mark(mark, time.monotonic() + TIMEOUT)}
    wait_queue_empty(slurm)
    return points


def slurm_job(env: dict, slurm, work: Path, name: str) -> dict:
    out = work / "slurm-out"
    start, cli_end, body = submit_batchai(env, work, name, "s", work / "slurm-marks" / name, out)
    ran = read_mark(work / "slurm-marks" / name, time.monotonic() + TIMEOUT)
    wait_queue_empty(slurm)
    return {
        "start": start,
        "cli": cli_end,
        "started": bundle_started(Path(os.environ["BATCHAI_SHARED_DIR"]), body),
        **agent_notes(out / body["jobOutputDirectoryPathSegment"] / "stdouterr"),
        "ran": ran,
    }


def wait_queue_empty(slurm) -> None:
    """Until Slurm's queue is empty (completing jobs included): the next job finds the nodes idle."""
    deadline = time.monotonic() + TIMEOUT
    while slurm.run("squeue", "-h").stdout.strip():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Slurm's queue did not empty within {TIMEOUT:.0f} s")
        time.sleep(0.1)


# -- the table ------------------------------------------------------------------------------------------


def latencies(jobs: list[dict]) -> list[float]:
    return [job["ran"] - job["start"] for job in jobs]


def line(label: str, values: list[float]) -> str:
    if not values:
        return f"  {label:<34} (no samples)"
    return (
        f"  {label:<34} p50 {percentile(values, 0.5):6.3f} s   p99 {percentile(values, 0.99):6.3f} s"
        f"   min {min(values):6.3f} s   n {len(values)}"
    )


def breakdown(jobs: list[dict], spans: dict[str, tuple[str, str, str]]) -> None:
    """The median of each span between two points of a job's life (those a job has both of)."""
    for label, (first, last, text) in spans.items():
        values = [job[last] - job[first] for job in jobs if job.get(first) is not None and job.get(last) is not None]
        shown = f"{statistics.median(values):6.3f} s" if values else "     -  "
        print(f"    {label:<17} {shown}  {text}")


def report_local(jobs: list[dict], floor: dict[str, list[float]]) -> None:
    print("local cluster (1 node): job create -> the job's command running")
    values = latencies(jobs)
    print(line("batchai job create", values))
    p50 = percentile(values, 0.5)
    verdict = "met" if p50 < GOAL_LOCAL else f"missed by {p50 - GOAL_LOCAL:.3f} s (x{p50 / GOAL_LOCAL:.1f} the goal)"
    print(f"  goal p50 < {GOAL_LOCAL} s: {verdict}")
    print("  where the time goes (median of each span):")
    breakdown(jobs, LOCAL_SPANS)
    print("  floors, same run:")
    for label, samples in floor.items():
        print(line(label, samples))


def report_slurm(ours: list[dict], bare: list[dict]) -> None:
    print("slurm partition (a private 2-node cluster): submit -> the job's command running")
    mine, floor = latencies(ours), latencies(bare)
    print(line("batchai job create", mine))
    print(line("bare sbatch --wrap", floor))
    ratios = {q: percentile(mine, q) / percentile(floor, q) for q in (0.5, 0.99)}
    verdict = "met" if max(ratios.values()) <= GOAL_SLURM else "missed"
    shown = f"p50 x{ratios[0.5]:.2f}, p99 x{ratios[0.99]:.2f}"
    print(f"  batchai / bare sbatch: {shown}   goal within x{GOAL_SLURM}: {verdict}")
    print("  where the time goes (median of each span):")
    breakdown(ours, SLURM_SPANS)
    breakdown(bare, BARE_SPANS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="Jobs per engine (and bare sbatch jobs).")
    parser.add_argument("--warmup", type=int, default=1, help="Jobs run first and not counted, on each side.")
    parser.add_argument("--skip-local", action="store_true")
    parser.add_argument("--skip-slurm", action="store_true")
    parser.add_argument(
        "--no-bytecode-cache",
        dest="bytecode",
        action="store_false",
        help="Keep PYTHONDONTWRITEBYTECODE as it is (each process compiles batchai_cli again).",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="batchai-bench-submit-"))
    names = ("BATCHAI_HOME", "BATCHAI_SHARED_DIR", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    saved = {name: os.environ.get(name) for name in names}
    try:
        if args.bytecode:
            bytecode_cache(work)
        cache = "kept (a run's own cache)" if args.bytecode else "as the environment has it"
        print(
            f"{args.jobs} jobs per side after {args.warmup} not counted, one at a time; latency = the command's "
            f"time.time() - the submitting command's start. Bytecode: {cache}."
        )
        print()
        if not args.skip_local:
            jobs = local_run(work, args.jobs, args.warmup)
            report_local(jobs, floors(work, min(args.jobs, 10)))
            print()
        if not args.skip_slurm:
            result = slurm_run(work, args.jobs, args.warmup)
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
