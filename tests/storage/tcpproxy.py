"""A loopback TCP proxy that can add latency, run as its own process: a far-away service, or one
that goes away (kill the process) in the middle of a transfer.

    python -m tests.storage.tcpproxy TARGET_PORT [--delay SECONDS] [--port LISTEN_PORT]

prints its listening port on the first line of stdout. Each chunk is delivered `delay` seconds
after it was read, in both directions, so a request/response round trip costs 2 x delay more
while throughput stays as it was (chunks are pipelined, not queued behind each other).
Used by tests/storage/test_transfer.py and bench/bench_upload.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    try:
        while data := await reader.read(256 * 1024):
            if delay:
                # Deadlines grow with the clock, so call_later keeps the chunks in order.
                loop.call_later(delay, _write, writer, data)
            else:
                writer.write(data)
                await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        loop.call_later(delay, writer.close)


def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    if not writer.is_closing():
        writer.write(data)


async def _serve(target_port: int, listen_port: int, delay: float) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, upstream_writer, delay),
            _pipe(upstream_reader, client_writer, delay),
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, backlog=512)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


class TcpProxy:
    """The proxy as a child process: `.port` to connect to, `.stop()` to make the service vanish."""

    def __init__(self, target_port: int, *, delay: float = 0.0):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.storage.tcpproxy", str(target_port), "--delay", str(delay)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target_port", type=int)
    parser.add_argument("--delay", type=float, default=0.0, help="one-way delay in seconds")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.target_port, args.port, args.delay))


if __name__ == "__main__":
    main()
