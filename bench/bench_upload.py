"""Upload speed: `batchai storage blob upload-batch` against `az storage blob upload-batch` and against a
raw concurrent-PUT ceiling written here, all three against one fresh Azurite, in one run.

    make bench-upload            # or: .venv/bin/python bench/bench_upload.py [--quick] [--skip-az]

The first run installs azure-cli from PyPI into .bench/az-venv (git-ignored; a few minutes).
Scenarios (goals from issue 4):
1. 300 files of 4 KiB through a loopback proxy adding ~50 ms per round trip (a laptop far from its
   region): batchai vs az, goal >= 10x az.
2. 2000 files of 4 KiB, no added delay: batchai vs the ceiling, goal >= 0.8.
3. One 1 GiB file, no added delay: batchai vs the ceiling, goal >= 0.8; batchai's peak RSS.
4. Scenario 2 again with --skip-unchanged: PUT requests (goal 0) and listing calls (goal 1 per 5000).

Both CLIs run as processes, timed from start to exit (start-up included, as a user waits for it);
batchai's own summary line also gives the transfer time, which is what the ceiling is compared
with (the ceiling is code in this process: no start-up, no file reads, no MD5).
This prints ratios from one run; it is not a timed test.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from email.utils import formatdate
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fixtures.azurite import ACCOUNT, KEY, start_azurite, stop_azurite  # noqa: E402
from tests.storage.tcpproxy import TcpProxy  # noqa: E402

AZ_VENV = REPO / ".bench" / "az-venv"
AZ = AZ_VENV / "bin" / "az"
CONNECTIONS = 32  # batchai's default for files at once
BLOCK_CONNECTIONS = 16  # ... and for the blocks of one large file


def connection_string(port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
    )


def ensure_az() -> Path:
    if not AZ.exists():
        print("installing azure-cli into .bench/az-venv (once; a few minutes) ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(AZ_VENV)], check=True)
        subprocess.run([str(AZ_VENV / "bin" / "pip"), "install", "--quiet", "azure-cli"], check=True)
    return AZ


# -- the ceiling: plain signed PUTs on persistent connections, nothing else ---------------------------


class RawPut:
    """Signed Put Blob / Put Block / Put Block List on one keep-alive connection per thread."""

    def __init__(self, port: int):
        self.port = port
        self.key = base64.b64decode(KEY)

    def _signed(self, method: str, path: str, query: str, headers: dict[str, str], length: int) -> dict[str, str]:
        headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2023-11-03", **headers}
        canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
        canonical_query = "".join(f"\n{k}:{v}" for k, v in sorted(p.split("=", 1) for p in query.split("&") if p))
        to_sign = f"{method}\n\n\n{length or ''}\n\n\n\n\n\n\n\n\n{canonical_headers}/{ACCOUNT}{path}{canonical_query}"
        signature = base64.b64encode(hmac.new(self.key, to_sign.encode(), hashlib.sha256).digest()).decode()
        return {**headers, "Authorization": f"SharedKey {ACCOUNT}:{signature}", "Content-Length": str(length)}

    def put(self, conn: http.client.HTTPConnection, path: str, body: bytes, query: str = "", **headers: str) -> None:
        conn.request(
            "PUT", path + (f"?{query}" if query else ""), body, self._signed("PUT", path, query, headers, len(body))
        )
        response = conn.getresponse()
        response.read()
        if response.status not in (201,):
            raise RuntimeError(f"PUT {path}?{query}: {response.status} {response.reason}")

    def in_threads(self, jobs: list, work, threads: int) -> float:
        lock = threading.Lock()
        queue = iter(jobs)
        errors: list[BaseException] = []

        def loop() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                while not errors:
                    with lock:
                        job = next(queue, None)
                    if job is None:
                        return
                    work(conn, job)
            except BaseException as exc:  # re-raised below: a failing ceiling must not look fast
                errors.append(exc)
            finally:
                conn.close()

        started = time.perf_counter()
        pool = [threading.Thread(target=loop) for _ in range(min(threads, len(jobs)))]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        if errors:
            raise errors[0]
        return time.perf_counter() - started

    def small_files(self, container: str, count: int, payload: bytes, threads: int = CONNECTIONS) -> float:
        def work(conn, index):
            self.put(conn, f"/{ACCOUNT}/{container}/f{index:05d}", payload, **{"x-ms-blob-type": "BlockBlob"})

        return self.in_threads(list(range(count)), work, threads)

    def big_file(self, container: str, size: int, block_size: int = 8 << 20, threads: int = BLOCK_CONNECTIONS) -> float:
        block = os.urandom(block_size)
        path = f"/{ACCOUNT}/{container}/big.bin"
        ids = [base64.b64encode(f"{i:06d}".encode()).decode() for i in range(-(-size // block_size))]  # no "=" padding

        def work(conn, index):
            length = min(block_size, size - index * block_size)
            self.put(conn, path, block[:length], f"blockid={ids[index]}&comp=block")

        started = time.perf_counter()
        self.in_threads(list(range(len(ids))), work, threads)
        body = (
            "<?xml version='1.0' encoding='utf-8'?><BlockList>"
            + "".join(f"<Latest>{i}</Latest>" for i in ids)
            + "</BlockList>"
        ).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.put(conn, path, body, "comp=blocklist")
        conn.close()
        return time.perf_counter() - started

    def container(self, name: str, method: str = "PUT") -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        path, query = f"/{ACCOUNT}/{name}", "restype=container"
        conn.request(method, f"{path}?{query}", b"", self._signed(method, path, query, {}, 0))
        conn.getresponse().read()
        conn.close()


# -- the two CLIs as processes ------------------------------------------------------------------------


class Run:
    def __init__(self, seconds: float, code: int, out: str, err: str, max_rss_kib: int):
        self.seconds, self.code, self.out, self.err, self.max_rss_kib = seconds, code, out, err, max_rss_kib

    @property
    def transfer_seconds(self) -> float:
        """batchai's own summary: the transfer without interpreter start-up."""
        match = re.search(r" in (\d+\.\d+) s;", self.err)
        return float(match.group(1)) if match else self.seconds


def run(argv: list[str], env: dict[str, str]) -> Run:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env={**os.environ, **env}, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Run(seconds, process.returncode, out.read().decode(), err.read().decode(), usage.ru_maxrss)
    if result.code != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} ... exited {result.code}:\n{result.err[-3000:]}")
    return result


def batchai(source: Path, container: str, port: int, home: Path, *extra: str) -> Run:
    argv = [
        sys.executable,
        "-m",
        "batchai_cli",
        "storage",
        "blob",
        "upload-batch",
        "-s",
        str(source),
        "-d",
        container,
        "--no-progress",
        *extra,
    ]
    return run(argv, {"AZURE_STORAGE_CONNECTION_STRING": connection_string(port), "BATCHAI_HOME": str(home)})


def az(source: Path, container: str, port: int, home: Path) -> Run:
    argv = [
        str(AZ),
        "storage",
        "blob",
        "upload-batch",
        "-s",
        str(source),
        "-d",
        container,
        "--connection-string",
        connection_string(port),
        "--no-progress",
        "--only-show-errors",
        "-o",
        "none",
    ]
    return run(argv, {"AZURE_CONFIG_DIR": str(home / "az"), "AZURE_CORE_COLLECT_TELEMETRY": "false"})


def make_small_files(folder: Path, count: int, size: int = 4096) -> Path:
    folder.mkdir(parents=True)
    for index in range(count):
        (folder / f"f{index:05d}.bin").write_bytes(os.urandom(size))
    return folder


def make_big_file(folder: Path, size: int) -> Path:
    folder.mkdir(parents=True)
    chunk = os.urandom(8 << 20)
    with open(folder / "big.bin", "wb") as f:
        for offset in range(0, size, len(chunk)):
            f.write(chunk[: min(len(chunk), size - offset)])
    return folder


@contextlib.contextmanager
def fresh_azurite(work: Path, container: str, *, delay: float = 0.0):
    """A new Azurite per measurement: Azurite slows down as it holds more blobs (about 195 -> 145
    PUT/s after 4000 blobs here), so sharing one would favour whoever runs first. Yields the port
    to talk to (a delaying proxy's when delay > 0) and the direct RawPut client."""
    server = start_azurite(work)
    try:
        raw = RawPut(server.port)
        # Node's JIT makes a fresh Azurite slow for its first few hundred requests; do those first.
        raw.container("warm-up")
        raw.small_files("warm-up", 600, os.urandom(4096))
        raw.container("warm-up", "DELETE")
        raw.container(container)
        if delay:
            with TcpProxy(server.port, delay=delay) as proxy:
                yield proxy.port, raw
        else:
            yield server.port, raw
    finally:
        stop_azurite(server)


def measure_ceiling(work: Path, container: str, measure, delay: float = 0.0) -> float:
    """measure(RawPut) on a fresh, warmed-up Azurite.

    The ceiling is measured before and after the two CLIs and the better of the two kept, so load
    from elsewhere on the machine during one of them does not flatter the ratios.
    """
    with fresh_azurite(work, container, delay=delay) as (port, _):
        return measure(RawPut(port))


def main() -> None:
    parser = argparse.ArgumentParser(description="batchai upload-batch vs az vs a raw PUT ceiling")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke test of the benchmark)")
    parser.add_argument("--skip-az", action="store_true", help="do not install or run azure-cli")
    parser.add_argument("--delay", type=float, default=0.025, help="one-way proxy delay, s (default 0.025)")
    args = parser.parse_args()
    far_files, small_files, big_size = (60, 300, 64 << 20) if args.quick else (300, 2000, 1 << 30)
    if not args.skip_az:
        ensure_az()
    work = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    home = work / "home"
    home.mkdir()
    rows: list[tuple[str, str]] = []
    try:
        # 1. far away: ~50 ms per round trip
        far = make_small_files(work / "far", far_files)

        def far_ceiling() -> float:
            return measure_ceiling(
                work, "far", lambda raw: far_files / raw.small_files("far", far_files, os.urandom(4096)), args.delay
            )

        before = far_ceiling()
        with fresh_azurite(work, "far", delay=args.delay) as (port, _):
            ours = batchai(far, "far", port, home)
        theirs = None
        if not args.skip_az:
            with fresh_azurite(work, "far", delay=args.delay) as (port, _):
                theirs = az(far, "far", port, home)
        ceiling = max(before, far_ceiling())
        rows.append((f"1. {far_files} x 4 KiB, +{args.delay * 2000:.0f} ms per round trip", ""))
        rows.append(("   batchai (whole command)", f"{far_files / ours.seconds:8.1f} files/s"))
        if theirs:
            rows.append(("   az (whole command)", f"{far_files / theirs.seconds:8.1f} files/s"))
        rows.append((f"   ceiling (raw PUT, {CONNECTIONS} connections)", f"{ceiling:8.1f} files/s"))
        if theirs:
            rows.append(("   RATIO batchai / az  (goal >= 10)", f"{theirs.seconds / ours.seconds:8.1f}x"))
        rows.append(("   ratio batchai transfer / ceiling", f"{far_files / ours.transfer_seconds / ceiling:8.2f}"))

        # 2. many small files, no added delay; 4. the same again with --skip-unchanged
        small = make_small_files(work / "small", small_files)

        def small_ceiling() -> float:
            return measure_ceiling(
                work, "small", lambda raw: small_files / raw.small_files("small", small_files, os.urandom(4096))
            )

        before = small_ceiling()
        with fresh_azurite(work, "small") as (port, _):
            ours = batchai(small, "small", port, home)
            again = batchai(small, "small", port, home, "--skip-unchanged", "--debug")
        theirs = None
        if not args.skip_az:
            with fresh_azurite(work, "small") as (port, _):
                theirs = az(small, "small", port, home)
        ceiling = max(before, small_ceiling())
        rows.append((f"2. {small_files} x 4 KiB, no added delay", ""))
        rows.append(
            (
                "   batchai transfer (whole command)",
                f"{small_files / ours.transfer_seconds:8.1f} files/s ({small_files / ours.seconds:.1f})",
            )
        )
        if theirs:
            rows.append(("   az (whole command)", f"{small_files / theirs.seconds:8.1f} files/s"))
        rows.append((f"   ceiling (raw PUT, {CONNECTIONS} connections)", f"{ceiling:8.1f} files/s"))
        rows.append(
            ("   RATIO batchai / ceiling  (goal >= 0.8)", f"{small_files / ours.transfer_seconds / ceiling:8.2f}")
        )
        if theirs:
            rows.append(("   ratio batchai / az (whole commands)", f"{theirs.seconds / ours.seconds:8.1f}x"))
        puts = len(re.findall(r"DEBUG: PUT ", again.err))
        lists = len(re.findall(r"DEBUG: GET \S*comp=list", again.err))
        rows.append((f"4. the {small_files} files again, --skip-unchanged", ""))
        rows.append(("   PUT requests (goal 0)", f"{puts:8d}"))
        rows.append((f"   listing calls (goal {-(-small_files // 5000)})", f"{lists:8d}"))
        rows.append(("   seconds (whole command, with --debug)", f"{again.seconds:8.2f}"))
        shutil.rmtree(far)
        shutil.rmtree(small)

        # 3. one big file, no added delay
        big = make_big_file(work / "big", big_size)
        mib = big_size / (1 << 20)

        def big_ceiling() -> float:
            return measure_ceiling(work, "big", lambda raw: mib / raw.big_file("big", big_size))

        before = big_ceiling()
        with fresh_azurite(work, "big") as (port, _):
            ours = batchai(big, "big", port, home)
        theirs = None
        if not args.skip_az:
            with fresh_azurite(work, "big") as (port, _):
                theirs = az(big, "big", port, home)
        ceiling = max(before, big_ceiling())
        rows.append((f"3. one {mib:.0f} MiB file, no added delay", ""))
        rows.append(
            (
                "   batchai transfer (whole command)",
                f"{mib / ours.transfer_seconds:8.1f} MiB/s ({mib / ours.seconds:.1f})",
            )
        )
        rows.append(("   batchai peak RSS", f"{ours.max_rss_kib / 1024:8.0f} MiB"))
        if theirs:
            rows.append(("   az (whole command)", f"{mib / theirs.seconds:8.1f} MiB/s"))
        rows.append((f"   ceiling (raw Put Block x{BLOCK_CONNECTIONS}, 8 MiB)", f"{ceiling:8.1f} MiB/s"))
        rows.append(("   RATIO batchai / ceiling  (goal >= 0.8)", f"{mib / ours.transfer_seconds / ceiling:8.2f}"))
        if theirs:
            rows.append(("   ratio batchai / az (whole commands)", f"{theirs.seconds / ours.seconds:8.1f}x"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(label) for label, _ in rows)
    print(
        f"\nbatchai upload-batch benchmark ({os.cpu_count()} CPUs; a fresh Azurite per measurement; "
        "ceiling = the better of one run before and one after the CLIs)"
    )
    for label, value in rows:
        print(f"{label:<{width}}  {value}" if value else label)


if __name__ == "__main__":
    main()
