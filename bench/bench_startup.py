"""Start-up time of `batchai --help` and `batchai workspace list`, against the Click floor and az.

Prints the median wall time of each command over N runs and the ratios, all from this one run
(this machine is noisy, so only same-run ratios mean anything). Not a test: it asserts nothing.

    python bench/bench_startup.py [--runs 21]

Goals (issue 2): within 1.3x of `python -c "import click"`, and at least 5x faster than `az --version`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_seconds(argv: list[str], runs: int, env: dict) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()

    python = sys.executable
    batchai = shutil.which("batchai", path=str(Path(python).parent)) or shutil.which("batchai")
    if not batchai:
        sys.exit("batchai is not installed in this environment (run `make install`)")
    home = tempfile.mkdtemp(prefix="batchai-bench-")
    env = {**os.environ, "BATCHAI_HOME": home}
    # Measure what an installed copy does: with bytecode compiled (pip compiles at install time; a
    # source checkout under PYTHONDONTWRITEBYTECODE would recompile every module on every run).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    import compileall

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "batchai_cli"), quiet=1)
    # A workspace list that reads a real state file with a few rows, not an empty folder.
    for name in ("ws1", "ws2", "ws3"):
        subprocess.run([batchai, "workspace", "create", "-g", "bench", "-n", name, "-o", "none"], env=env, check=True)

    cases = {
        "python -c pass": [python, "-c", "pass"],
        "python -c 'import click' (floor)": [python, "-c", "import click"],
        "batchai --help": [batchai, "--help"],
        "batchai workspace list": [batchai, "workspace", "list"],
    }
    # az from PATH, else the one bench_upload.py installs into .bench/az-venv.
    local_az = Path(__file__).resolve().parent.parent / ".bench" / "az-venv" / "bin" / "az"
    az = shutil.which("az") or (str(local_az) if local_az.exists() else None)
    if az:
        cases["az --version"] = [az, "--version"]
    for argv in cases.values():  # warm the page cache and .pyc files
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    results = {label: median_seconds(argv, args.runs, env) for label, argv in cases.items()}
    shutil.rmtree(home, ignore_errors=True)

    floor = results["python -c 'import click' (floor)"]
    print(f"median of {args.runs} runs each, one run of this script:")
    for label, seconds in results.items():
        print(f"  {label:36s} {seconds * 1000:7.1f} ms   {seconds / floor:5.2f}x click floor")
    for label in ("batchai --help", "batchai workspace list"):
        line = f"{label}: {results[label] / floor:.2f}x the click floor (goal <= 1.3x)"
        if az:
            line += f", {results['az --version'] / results[label]:.1f}x faster than az --version (goal >= 5x)"
        else:
            line += "; az is not installed here, so no az ratio (pip install azure-cli to get one)"
        print(line)


if __name__ == "__main__":
    main()
