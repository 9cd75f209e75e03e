"""Run the emulator in the foreground: python -m batchai_cli.emulators.azfiles --root DIR [--port N].

Prints the connection string on one line, then serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from .server import DEFAULT_ACCOUNT, DEFAULT_KEY, AzureFilesEmulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchai_cli.emulators.azfiles", description=__doc__)
    parser.add_argument("--root", required=True, type=Path, help="folder holding the shares")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--account", default=DEFAULT_ACCOUNT)
    parser.add_argument("--key", default=DEFAULT_KEY)
    args = parser.parse_args(argv)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emulator = AzureFilesEmulator(args.root, args.account, args.key, host=args.host, port=args.port)
    with emulator:
        print(emulator.connection_string, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
