"""python -m batchai_cli.emulators [--location DIR] [--blob-port N] [--file-port N] [--no-azurite]:
the same as `batchai emulators start`, without the batchai command line."""

from __future__ import annotations

import argparse
import sys

from batchai_cli.emulators.run import BLOB_PORT, FILE_PORT, Emulators, default_location, serve_until_stopped
from batchai_cli.errors import BatchAIError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m batchai_cli.emulators", description=__doc__)
    parser.add_argument("--location", type=str, default=None, help="folder for their data")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--blob-port", type=int, default=BLOB_PORT)
    parser.add_argument("--file-port", type=int, default=FILE_PORT, help="0 picks a free port")
    parser.add_argument("--azurite", default=None, help="Azurite's azurite-blob (or azurite) program")
    parser.add_argument("--no-azurite", action="store_true", help="start the Files emulator only")
    args = parser.parse_args(argv)
    emulators = Emulators(
        args.location or default_location(),
        host=args.host,
        blob_port=args.blob_port,
        file_port=args.file_port,
        azurite=None if args.no_azurite else (args.azurite or ""),
    )
    try:
        return serve_until_stopped(emulators, sys.stderr.write)
    except BatchAIError as exc:
        sys.stderr.write(f"ERROR: {exc.message} {exc.hint or ''}".rstrip() + "\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
