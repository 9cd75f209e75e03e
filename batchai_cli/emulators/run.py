"""Start the Azure Files emulator and Azurite (Blob) side by side, and say how to reach both.

Azurite is a Node.js program (`npm install -g azurite`); it is found as `--azurite PATH`, else
`azurite-blob` or `azurite` on the PATH, else the copy `make test-deps` puts in a checkout's
.test-services/. Without it the Files emulator runs alone, and the message says how to get Azurite.
Both listen on loopback by default; the account is the emulators' well-known devstoreaccount1 with
its published key (not a secret), so the connection string printed is the one to export.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from batchai_cli.errors import BatchAIError

BLOB_PORT = 10000  # Azurite's default
FILE_PORT = 10004  # next to Azurite's blob, queue and table ports (10000-10002)
AZURITE_HINT = "Install it with `npm install -g azurite` (Node.js 18 or newer), or give --azurite PATH."
_CHECKOUT_AZURITE = Path(__file__).resolve().parents[2] / ".test-services" / "azurite" / "node_modules" / ".bin"


def default_location() -> str:
    home = os.environ.get("BATCHAI_HOME") or os.path.join(os.path.expanduser("~"), ".batchai")
    return os.path.join(home, "emulators")


def find_azurite(explicit: str | None = None) -> str | None:
    """The Azurite program to run: `explicit`, else azurite-blob/azurite on the PATH, else a
    checkout's .test-services copy; None when there is none."""
    if explicit:
        found = shutil.which(explicit)
        if not found:
            raise BatchAIError(f"Azurite was not found at {explicit}.", hint=AZURITE_HINT)
        return found
    for name in ("azurite-blob", "azurite"):
        found = shutil.which(name)
        if found:
            return found
    candidate = _CHECKOUT_AZURITE / "azurite-blob"
    return str(candidate) if candidate.exists() else None


class Emulators:
    """The Files emulator (in this process, a thread) and Azurite (a child process)."""

    def __init__(
        self,
        location: str,
        *,
        host: str = "127.0.0.1",
        blob_port: int = BLOB_PORT,
        file_port: int = FILE_PORT,
        azurite: str | None = "",
    ):
        """azurite: a program path, "" to look for one, None for none."""
        from batchai_cli.emulators.azfiles import AzureFilesEmulator

        self.location = Path(location)
        self.host = host
        self.blob_port = blob_port
        self.files = AzureFilesEmulator(self.location / "files", host=host, port=file_port)
        self.azurite_program = None if azurite is None else find_azurite(azurite or None)
        self.azurite: subprocess.Popen | None = None
        self.azurite_log = self.location / "azurite.log"

    @property
    def blob_endpoint(self) -> str | None:
        if self.azurite is None:
            return None
        return f"http://{self.host}:{self.blob_port}/{self.files.account_name}"

    @property
    def connection_string(self) -> str:
        blob = f"BlobEndpoint={self.blob_endpoint};" if self.blob_endpoint else ""
        return self.files.connection_string + blob

    def start(self, timeout: float = 30) -> Emulators:
        (self.location / "files").mkdir(parents=True, exist_ok=True)
        try:
            self.files.start()
        except OSError as exc:
            raise BatchAIError(
                f"The Azure Files emulator cannot listen on {self.host}:{self.files.port}: {exc.strerror}.",
                hint="Give another --file-port (0 picks a free one).",
            ) from None
        if self.azurite_program:
            try:
                self._start_azurite(timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def _start_azurite(self, timeout: float) -> None:
        blob_dir = self.location / "azurite"
        blob_dir.mkdir(parents=True, exist_ok=True)
        with self.azurite_log.open("ab") as log:
            self.azurite = subprocess.Popen(
                [
                    self.azurite_program,
                    "--blobHost",
                    self.host,
                    "--blobPort",
                    str(self.blob_port),
                    "--location",
                    str(blob_dir),
                    "--skipApiVersionCheck",
                    "--loose",
                    "--disableTelemetry",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=blob_dir,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.azurite.poll() is not None:
                tail = self.azurite_log.read_text(errors="replace")[-800:].strip()
                self.azurite = None
                raise BatchAIError(
                    f"Azurite ({self.azurite_program}) stopped at start: {tail or 'no output'}",
                    hint=f"Is port {self.blob_port} taken? Give another --blob-port. Its log: {self.azurite_log}",
                )
            if self._blob_answers():
                return
            time.sleep(0.1)
        raise BatchAIError(f"Azurite did not answer on port {self.blob_port} within {timeout:g} s.")

    def _blob_answers(self) -> bool:
        try:
            connection = http.client.HTTPConnection(self.host, self.blob_port, timeout=1)
            connection.request("GET", f"/{self.files.account_name}?comp=list")
            connection.getresponse().read()
            connection.close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.azurite is not None and self.azurite.poll() is None:
            self.azurite.terminate()
            try:
                self.azurite.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.azurite.kill()
                self.azurite.wait(timeout=5)
        self.files.stop()

    def describe(self) -> list[str]:
        """What runs where, for people (stderr)."""
        lines = [f"Azure Files emulator: {self.files.endpoint} (shares in {self.location / 'files'})"]
        if self.azurite is not None:
            lines.append(f"Azurite (Blob): {self.blob_endpoint} (data in {self.location / 'azurite'})")
        else:
            lines.append(f"Azurite (Blob) is not running: it is not installed. {AZURITE_HINT}")
        lines.append(
            "Point batchai at them (job create, job file, storage commands):\n"
            f"  export AZURE_STORAGE_CONNECTION_STRING='{self.connection_string}'"
        )
        lines.append("Stop them with Ctrl-C.")
        return lines


def serve_until_stopped(emulators: Emulators, say: Callable[[str], object]) -> int:
    """Start, print the connection string (stdout) and what runs where (`say`), serve until SIGTERM
    or Ctrl-C, then stop both."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emulators.start()
    try:
        print(emulators.connection_string, flush=True)
        for line in emulators.describe():
            say(line + "\n")
        while not stop.wait(0.5):
            if emulators.azurite is not None and emulators.azurite.poll() is not None:
                say(f"ERROR: Azurite stopped (exit code {emulators.azurite.returncode}); see {emulators.azurite_log}\n")
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        emulators.stop()
        signal.signal(signal.SIGTERM, previous)
    return 0
