"""`batchai emulators start`: the Azure Files emulator and Azurite, for trying batchai without Azure."""

from __future__ import annotations

import click

from batchai_cli.cli.options import group


@group()
def emulators() -> None:
    """Run Azure Storage emulators on this machine (Azure Files, and Azurite for Blob)."""


@emulators.command("start")
@click.option(
    "--location",
    metavar="DIR",
    help="Folder for their data (shares, containers). Default: $BATCHAI_HOME/emulators.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--blob-port", type=int, default=10000, show_default=True, help="Azurite's Blob port.")
@click.option(
    "--file-port", type=int, default=10004, show_default=True, help="The Files emulator's port (0: a free one)."
)
@click.option("--azurite", metavar="PATH", help="Azurite's azurite-blob (or azurite) program. Default: from the PATH.")
@click.option("--no-azurite", is_flag=True, help="Start the Azure Files emulator only.")
def start(location, host, blob_port, file_port, azurite, no_azurite):
    """Start the Azure Files emulator, and Azurite beside it, until Ctrl-C.

    Prints one connection string naming both endpoints (BlobEndpoint and FileEndpoint) on stdout;
    export it as AZURE_STORAGE_CONNECTION_STRING and job.json files, `job file` and the storage
    commands use the emulators. Azurite (Blob) is started where it is installed (`npm install -g
    azurite`); no other Azure Files emulator exists, so batchai brings its own. The same runs
    without the command line: python -m batchai_cli.emulators.

    \b
    Examples:
      Start both, keeping their data in $BATCHAI_HOME/emulators.
        batchai emulators start
      In another shell: point batchai at them.
        export AZURE_STORAGE_CONNECTION_STRING='DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;...'
      Start the Files emulator alone, on a free port, with its shares in ./shares.
        batchai emulators start --no-azurite --file-port 0 --location ./shares
    """
    import sys

    from batchai_cli.emulators.run import Emulators, default_location, serve_until_stopped

    servers = Emulators(
        location or default_location(),
        host=host,
        blob_port=blob_port,
        file_port=file_port,
        azurite=None if no_azurite else (azurite or ""),
    )
    code = serve_until_stopped(servers, sys.stderr.write)
    if code:
        raise SystemExit(code)
