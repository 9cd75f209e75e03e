"""An Azurite of its own that can really be stopped and started again (an outage), keeping its data.

The session's Azurite (tests/fixtures/azurite.py) keeps its blobs in memory, so stopping it loses
them; this one persists to a folder (`--location`) and comes back on the same port, as a storage
service does after an outage. Used by the outage tests and by `make soak`.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.fixtures.azurite import ACCOUNT, KEY, Azurite, ensure_azurite_installed, free_port


class StoppableAzurite:
    """`stop()` makes the service vanish (the port refuses connections), `start()` brings it
    back with its data; `outage(seconds)` does both."""

    def __init__(self, work_dir: Path):
        self.work_dir = work_dir
        self.location = work_dir / "azurite-data"
        self.location.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.server: Azurite | None = None
        self.outages = 0
        self.start()

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={self.blob_endpoint};"
        )

    account_name = ACCOUNT
    account_key = KEY

    def start(self, timeout: float = 30.0) -> None:
        binary = ensure_azurite_installed()
        log_path = self.work_dir / f"azurite-{self.port}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    str(binary),
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(self.port),
                    "--location",
                    str(self.location),
                    "--skipApiVersionCheck",
                    "--loose",
                    "--silent",
                    "--disableTelemetry",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
            )
        self.server = Azurite(process=process, port=self.port, log_path=log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            if self.server.healthy(timeout=1.0):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Azurite did not start on port {self.port}; see {log_path}")

    def stop(self) -> None:
        """Gone: the port refuses connections. SIGTERM, so Azurite saves its metadata (it keeps
        it in memory between saves; a SIGKILL would lose the last blobs, a fault of the emulator
        and not of what is tested), then SIGKILL if it lingers."""
        if self.server is not None and self.server.process.poll() is None:
            self.server.process.terminate()
            try:
                self.server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.process.kill()
                self.server.process.wait(timeout=10)

    def outage(self, seconds: float) -> None:
        self.stop()
        self.outages += 1
        time.sleep(seconds)
        self.start()

    def healthy(self) -> bool:
        return self.server is not None and self.server.healthy()
