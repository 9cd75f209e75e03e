"""The portal's speed: server time for the job list with 10,000 jobs, and the log viewer's latency
next to `batchai job file stream` on the same running job.

Job list: 10,000 ended jobs in two experiments of one workspace (written through the state store),
a real `batchai portal` process, and GET /jobs/GROUP/WS (page 1, then a state filter) timed from
this process, p50 and p95 over repeated requests. The peer in the same run: services.jobs.list_jobs
over both experiments, what `batchai job list` calls. Log viewer: a job printing a timestamped
line every --interval s; the same lines read by a `job file stream` process and by an SSE client of
the portal's /log; per-line latency = arrival - the time in the line. Prints figures; asserts nothing.

    python bench/bench_portal.py [--jobs 10000] [--requests 20] [--lines 40] [--interval 0.25]

Goals (issue 14): job list p50 under 200 ms; log viewer p50 within 0.1 s of `job file stream`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_stream import TICKER, batchai, percentile, python_command  # noqa: E402

JOB = ("-g", "bench", "-w", "ws", "-e", "exp")


def seed(count: int) -> None:
    from batchai_cli import ids
    from batchai_cli.services import open_session

    session = open_session()
    workspace = ids.workspace_id(session.subscription, "bench", "ws")
    for name in ("many-a", "many-b"):
        rid = workspace.child("experiment", name)
        session.state.create(rid, {"id": str(rid), "name": name})
    for index in range(count):
        rid = workspace.child("experiment", ("many-a", "many-b")[index % 2]).child("job", f"job{index:05d}")
        state = "succeeded" if index % 3 else "failed"
        session.state.create(
            rid,
            {
                "id": str(rid),
                "name": rid.name,
                "creationTime": f"2026-01-01T{index // 3600:02d}:{index // 60 % 60:02d}:{index % 60:02d}+00:00",
                "executionState": state,
                "executionInfo": {"startTime": "2026-01-01T00:00:00+00:00", "endTime": None, "exitCode": 0},
                "cluster": {"id": str(workspace.child("cluster", "c"))},
                "nodeCount": 1,
                "toolType": "custom",
            },
        )
    session.close()


def peer_list_jobs() -> float:
    from batchai_cli import ids
    from batchai_cli.services import jobs, open_session

    session = open_session()
    workspace = ids.workspace_id(session.subscription, "bench", "ws")
    started = time.perf_counter()
    for name in ("many-a", "many-b"):
        jobs.list_jobs(session, workspace.child("experiment", name))
    elapsed = time.perf_counter() - started
    session.close()
    return elapsed


class Portal:
    def __init__(self, env: dict):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "batchai_cli", "portal", "--port", "0"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        url = self.process.stdout.readline().strip()
        self.port = int(url.split(":")[2].split("/")[0])
        self.cookie = "batchai_portal_token=" + url.split("token=")[1]

    def get(self, path: str) -> tuple[int, float]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        started = time.perf_counter()
        connection.request("GET", path, headers={"Cookie": self.cookie})
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        connection.close()
        return response.status, elapsed

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def sse_lines(portal: Portal, name: str, arrivals: dict[int, float], stamps: dict[int, float]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=120)
    connection.request("GET", f"/jobs/bench/ws/exp/{name}/log?f=stdout.txt", headers={"Cookie": portal.cookie})
    response = connection.getresponse()
    pending, event = "", None
    while True:
        raw = response.readline()
        if not raw:
            return
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == "text":
            now = time.time()
            pending += json.loads(line[6:])
            *complete, pending = pending.split("\n")
            for text in complete:
                seq, stamp, _ = text.split(" ", 2)
                arrivals[int(seq)] = now
                stamps[int(seq)] = float(stamp)
        elif line.startswith("data: ") and event == "end":
            return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--lines", type=int, default=40)
    parser.add_argument("--interval", type=float, default=0.25)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-portal-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "BATCHAI_HOME": str(folder / "home"), "NO_COLOR": "1"}
        os.environ.update(env)
        batchai(env, "workspace", "create", "-g", "bench", "-n", "ws", "-o", "none")
        batchai(env, "experiment", "create", *JOB[:4], "-n", "exp", "-o", "none")
        batchai(env, "cluster", "create", *JOB[:4], "-n", "c", "-s", "S", "-t", "1", "-u", "u", "-p", "Passw0rd!")
        started = time.perf_counter()
        seed(args.jobs)
        print(f"seeded {args.jobs} jobs in {time.perf_counter() - started:.1f} s")
        portal = Portal(env)
        try:
            for path in ("/jobs/bench/ws", "/jobs/bench/ws?state=failed&experiment=many-b&page=3"):
                times = []
                for _ in range(args.requests):
                    status, elapsed = portal.get(path)
                    assert status == 200, status
                    times.append(elapsed)
                peer = [peer_list_jobs() for _ in range(3)]
                p50, peer50 = percentile(times, 0.5), percentile(peer, 0.5)
                print(
                    f"job list {path}: p50 {p50 * 1000:.0f} ms, p95 {percentile(times, 0.95) * 1000:.0f} ms "
                    f"(goal < 200 ms); services.jobs.list_jobs over the same jobs {peer50 * 1000:.0f} ms "
                    f"(ratio {p50 / peer50:.2f})"
                )

            command = python_command(TICKER, str(args.lines), str(args.interval))
            job_file = folder / "tick.json"
            job_file.write_text(
                json.dumps(
                    {
                        "properties": {
                            "nodeCount": 1,
                            "customToolkitSettings": {"commandLine": command},
                            "stdOutErrPathPrefix": str(folder / "storage"),
                        }
                    }
                )
            )
            batchai(env, "job", "create", *JOB, "-n", "tick", "-c", "c", "-f", str(job_file), "-o", "none")
            web_arrivals: dict[int, float] = {}
            web_stamps: dict[int, float] = {}
            viewer = threading.Thread(target=sse_lines, args=(portal, "tick", web_arrivals, web_stamps), daemon=True)
            viewer.start()
            stream = subprocess.Popen(
                [sys.executable, "-m", "batchai_cli", "job", "file", "stream", *JOB, "-j", "tick", "-f", "stdout.txt"],
                env=env,
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            cli_latency = []
            for raw in stream.stdout:
                now = time.time()
                _seq, stamp, _ = raw.decode().split(" ", 2)
                cli_latency.append(now - float(stamp))
            stream.wait()
            viewer.join(timeout=60)
            web_latency = [web_arrivals[seq] - web_stamps[seq] for seq in web_arrivals]
            cli50, web50 = percentile(cli_latency, 0.5), percentile(web_latency, 0.5)
            print(
                f"log latency over {args.lines} lines every {args.interval} s: job file stream p50 {cli50:.3f} s "
                f"({len(cli_latency)} lines), portal log viewer p50 {web50:.3f} s ({len(web_latency)} lines); "
                f"difference {web50 - cli50:+.3f} s (goal within 0.1 s)"
            )
        finally:
            portal.stop()


if __name__ == "__main__":
    main()
