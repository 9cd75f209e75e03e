"""Latency of `batchai job file stream`: from a line written by a running job to the line on the
streaming process's stdout, p50 and p99, on a local folder and on Azurite Blob; and a lossless
check: 10 MB of lines with multi-byte characters, streamed while written, equal the file exactly.

Each line the job prints carries the time it was written (time.time(); the job and the streamer
run on this machine, so the clocks are one). The streamer is a real `python -m batchai_cli job
file stream` process; a line's latency is when the benchmark reads it from that process's stdout,
minus the time in the line. The peer, measured on the same job in the same run, is az's algorithm
(`tail_file`: a ranged read every 1 s) over the same storage. Prints figures from this one run; it
asserts nothing.

    python bench/bench_stream.py [--seconds 20] [--interval 0.05] [--skip-azurite] [--no-sparse]

Goals (issue 6): p50 at most 0.5 s, p99 at most 1.5 s; the 10 MB stream equal to the file.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

JOB = ("-g", "bench", "-w", "ws", "-e", "exp")
TICKER = """
import sys, time
count, interval = int(sys.argv[1]), float(sys.argv[2])
for i in range(count):
    print(f"{i} {time.time():.6f} é€😀", flush=True)
    time.sleep(interval)
"""
BIG = """
import sys, time
line = ('é€😀 %07d ' * 8 + '\\n')
for i in range(80000):
    sys.stdout.write(line % ((i,) * 8))
    if i % 2000 == 0:
        sys.stdout.flush()
        time.sleep(0.05)
"""
BIG_TEXT = "".join(("é€😀 %07d " * 8 + "\n") % ((i,) * 8) for i in range(80000)).encode()


def batchai(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchai_cli", *args], env=env, cwd=REPO, capture_output=True, text=True, check=check
    )


def python_command(script: str, *args: str) -> str:
    return " ".join([shlex.quote(sys.executable), "-u", "-c", shlex.quote(script), *map(shlex.quote, args)])


def submit(env: dict, name: str, properties: dict, folder: Path) -> None:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"properties": properties}))
    batchai(env, "job", "create", *JOB, "-n", name, "-c", "c", "-f", str(path), "-o", "none")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def az_style_tail(env: dict, name: str, arrivals: dict[int, float], stop: threading.Event) -> None:
    """az 0.4.10's tail_file over the same storage: wait for the file, then a ranged read from the
    downloaded offset, then the job's state, then sleep 1 s."""
    os.environ.update(env)
    from batchai_cli.ids import parse
    from batchai_cli.services import open_session
    from batchai_cli.services.files import locate
    from batchai_cli.services.jobs import get_job

    session = open_session()
    rid = parse(
        f"/subscriptions/{session.subscription}/resourceGroups/bench/providers/Microsoft.BatchAI/"
        f"workspaces/ws/experiments/exp/jobs/{name}"
    )
    directory = locate(session, rid)
    key = f"{directory.key}/stdout.txt"
    offset, pending = 0, b""
    while not stop.is_set():
        try:
            data = directory.store.read_range(key, offset)
        except FileNotFoundError:
            data = b""
        now = time.time()
        offset += len(data)
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            arrivals.setdefault(int(line.split()[0]), now)
        if get_job(session, rid)["executionState"] in ("succeeded", "failed"):
            break
        time.sleep(1)
    session.close()


def latency_run(env: dict, folder: Path, name: str, properties: dict, count: int, interval: float) -> dict:
    """Stream a ticking job with batchai (a process) and az's algorithm (a thread); latencies in s."""
    properties = {
        **properties,
        "customToolkitSettings": {"commandLine": python_command(TICKER, str(count), str(interval))},
    }
    submit(env, name, properties, folder)
    process = subprocess.Popen(
        [sys.executable, "-m", "batchai_cli", "job", "file", "stream", *JOB, "-j", name, "-f", "stdout.txt"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    az_arrivals: dict[int, float] = {}
    stop = threading.Event()
    peer = threading.Thread(target=az_style_tail, args=(env, name, az_arrivals, stop), daemon=True)
    peer.start()
    ours, stamps = {}, {}
    for raw in process.stdout:
        now = time.time()
        seq, stamp, _ = raw.decode().split(" ", 2)
        ours[int(seq)] = now
        stamps[int(seq)] = float(stamp)
    process.wait()
    peer.join(timeout=30)
    stop.set()

    def figures(arrivals: dict[int, float]) -> dict:
        latencies = [arrivals[seq] - stamps[seq] for seq in arrivals if seq in stamps]
        return {
            "lines": len(arrivals),
            "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies),
        }

    return {
        "ours": figures(ours),
        "az": figures(az_arrivals),
        "expected": count,
        "in_order": list(ours) == sorted(ours),
    }


def lossless_run(env: dict, folder: Path, name: str, properties: dict) -> tuple[bool, int, float]:
    submit(env, name, {**properties, "customToolkitSettings": {"commandLine": python_command(BIG)}}, folder)
    started = time.monotonic()
    shown = batchai(env, "job", "file", "stream", *JOB, "-j", name, "-f", "stdout.txt").stdout
    took = time.monotonic() - started
    # text=True decoded it; compare the bytes it stands for.
    return shown.encode() == BIG_TEXT, len(shown.encode()), took


def report(label: str, result: dict) -> None:
    ours, az = result["ours"], result["az"]
    lost = result["expected"] - ours["lines"]
    print(f"{label}")
    print(
        f"  batchai job file stream   p50 {ours['p50']:.3f} s   p99 {ours['p99']:.3f} s   max {ours['max']:.3f} s"
        f"   lines {ours['lines']}/{result['expected']}{'' if not lost else f' ({lost} LOST)'}"
        f"{'' if result['in_order'] else ' OUT OF ORDER'}"
    )
    print(f"  az tail_file (1 s poll)   p50 {az['p50']:.3f} s   p99 {az['p99']:.3f} s   max {az['max']:.3f} s")
    print(f"  az / batchai: p50 x{az['p50'] / ours['p50']:.1f}, p99 x{az['p99'] / ours['p99']:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="How long each ticking job prints.")
    parser.add_argument("--interval", type=float, default=0.05, help="Seconds between the job's lines.")
    parser.add_argument("--skip-azurite", action="store_true")
    parser.add_argument(
        "--no-sparse", dest="sparse", action="store_false", help="Skip the run with a line every 2.5 s (15 s)."
    )
    args = parser.parse_args()
    count = int(args.seconds / args.interval)

    work = Path(tempfile.mkdtemp(prefix="batchai-bench-stream-"))
    env = {**os.environ, "BATCHAI_HOME": str(work / "home"), "NO_COLOR": "1"}
    env.pop("AZURE_STORAGE_CONNECTION_STRING", None)
    batchai(env, "workspace", "create", "-g", "bench", "-n", "ws", "-o", "none")
    batchai(env, "experiment", "create", "-g", "bench", "-w", "ws", "-n", "exp", "-o", "none")
    batchai(
        env,
        "cluster",
        "create",
        "-g",
        "bench",
        "-w",
        "ws",
        "-n",
        "c",
        "-s",
        "Standard_NC6",
        "-t",
        "1",
        "-u",
        "bench",
        "-p",
        "Passw0rd!",
        "-o",
        "none",
    )
    print(f"A job prints a line every {args.interval} s for {args.seconds:g} s ({count} lines); one run, this machine.")
    print()
    local = {"nodeCount": 1, "stdOutErrPathPrefix": str(work / "out")}
    report("local folder", latency_run(env, work, "local", local, count, args.interval))
    if args.sparse:
        # Lines far apart: the stream has backed off towards its 2 s idle poll when each arrives.
        report("local folder, a line every 2.5 s (idle backoff)", latency_run(env, work, "local-sparse", local, 6, 2.5))
    same, size, took = lossless_run(env, work, "local-big", local)
    print(
        f"  lossless: {size / 1e6:.1f} MB streamed while written, equal to the file: {'yes' if same else 'NO'}"
        f" ({took:.1f} s)"
    )
    print()
    if args.skip_azurite:
        return
    from batchai_cli.storage.blob import BlobStore
    from batchai_cli.storage.credentials import parse_connection_string
    from tests.fixtures.azurite import start_azurite, stop_azurite

    azurite = start_azurite(work)
    try:
        env["AZURE_STORAGE_CONNECTION_STRING"] = azurite.connection_string
        BlobStore("bench", credentials=parse_connection_string(azurite.connection_string)).create_root()
        volume = {
            "accountName": azurite.account_name,
            "containerName": "bench",
            "credentials": {"accountKey": azurite.account_key},
            "relativeMountPath": "bfs",
        }
        blob = {
            "nodeCount": 1,
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs",
            "mountVolumes": {"azureBlobFileSystems": [volume]},
        }
        report("Azurite Blob", latency_run(env, work, "blob", blob, count, args.interval))
        same, size, took = lossless_run(env, work, "blob-big", blob)
        print(
            f"  lossless: {size / 1e6:.1f} MB streamed while written, equal to the file: {'yes' if same else 'NO'}"
            f" ({took:.1f} s)"
        )
    finally:
        stop_azurite(azurite)


if __name__ == "__main__":
    main()
