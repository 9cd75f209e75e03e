"""`batchai storage`: upload and download datasets (blob/file upload-batch, download-batch) and create
containers and shares, with az's option names and output, so a user needs no `az` at all.

The summary of a transfer (files, bytes, skipped, failed, seconds) goes to stderr; a progress bar
too, on a terminal, unless --no-progress. stdout carries az's JSON result only.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from batchai_cli.cli.options import group, pass_app

_DESTINATION_HELP = {
    "blob": "The blob container where the files will be uploaded: a container name, container/path, or the "
    "container URL (https://<account>.blob.core.windows.net/<container>[?<SAS>]).",
    "file": "The file share where the files will be uploaded: a share name, share/path, or the share URL "
    "(https://<account>.file.core.windows.net/<share>[?<SAS>]).",
}
_SOURCE_HELP = {
    "blob": "The blob container from where the files will be downloaded: a container name, container/path, or "
    "the container URL.",
    "file": "The source file share from where the files will be downloaded: a share name, share/path, or the "
    "share URL.",
}


def storage_account_options(function):
    """az's storage account options; the environment fills in what is not given (see credentials.py)."""
    options = [
        click.option(
            "--account-name",
            metavar="NAME",
            help="Storage account name. Environment variable: AZURE_STORAGE_ACCOUNT.",
        ),
        click.option(
            "--account-key",
            metavar="KEY",
            help="Storage account key. Environment variable: AZURE_STORAGE_KEY.",
        ),
        click.option(
            "--connection-string",
            metavar="STRING",
            help="Storage account connection string. Environment variable: AZURE_STORAGE_CONNECTION_STRING.",
        ),
        click.option(
            "--sas-token",
            metavar="TOKEN",
            help="A Shared Access Signature (SAS). Environment variable: AZURE_STORAGE_SAS_TOKEN.",
        ),
        click.option(
            "--auth-mode",
            type=click.Choice(["key", "login"]),
            help="The mode in which to run the command. 'login' uses your Azure login (azure-identity "
            "DefaultAzureCredential); 'key' (the default) uses a key, SAS or connection string.",
        ),
        click.option(
            "--anonymous",
            is_flag=True,
            help="Send unsigned requests (a public container). Without it, no credentials at all is an error. "
            "Not in az.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _credentials(account_name, account_key, connection_string, sas_token, auth_mode, anonymous=False):
    from batchai_cli.storage import resolve_credentials

    return resolve_credentials(
        account_name=account_name,
        account_key=account_key,
        connection_string=connection_string,
        sas_token=sas_token,
        auth_mode=auth_mode,
    )


# How long a batch transfer retries a request while storage does not answer: about what az's
# retry policy waits (15 + 18 + 24 s); BATCHAI_STORAGE_PATIENCE sets it.
TRANSFER_PATIENCE = 60.0


def _open(kind: str, location: str, account: dict, *, transfer: bool = False):
    """The store for a container/share name, name/path, or URL given on the command line, with the
    credentials the account options and the environment give. A batch transfer's store waits out
    an outage of TRANSFER_PATIENCE seconds."""
    from batchai_cli.errors import UsageError
    from batchai_cli.storage import open_store
    from batchai_cli.storage.credentials import require_credentials

    credentials = require_credentials(_credentials(**account), location, anonymous=account.get("anonymous", False))

    scheme = "azureblob" if kind == "blob" else "azurefile"
    target = location if "://" in location else f"{scheme}://{location.strip('/')}"
    try:
        store = open_store(target, credentials)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if store.scheme != scheme:
        raise UsageError(
            f"'{location.split('?')[0]}' is not an Azure {'Blob container' if kind == 'blob' else 'file share'}."
        )
    if transfer:
        try:
            store.wait_out_outages(float(os.environ.get("BATCHAI_STORAGE_PATIENCE", TRANSFER_PATIENCE)))
        except ValueError:
            raise UsageError(
                f"BATCHAI_STORAGE_PATIENCE must be a number of seconds, not {os.environ['BATCHAI_STORAGE_PATIENCE']!r}."
            ) from None
    return store


def _transfer_options(function):
    function = click.option(
        "--no-progress", is_flag=True, help="Include this flag to disable progress reporting for the command."
    )(function)
    function = click.option(
        "--max-connections",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Maximum number of parallel connections: files at once, and blocks of one large file at once. "
        "Default: 32 files, 16 blocks (az: 2).",
    )(function)
    function = click.option(
        "--skip-unchanged",
        is_flag=True,
        help="Skip files whose size and MD5 match the other side (one listing per 5000 files); "
        "changed files are replaced. Not in az.",
    )(function)
    function = click.option(
        "--dryrun",
        is_flag=True,
        help="Show the summary of the operations to be taken instead of actually transferring the file(s).",
    )(function)
    function = click.option(
        "--pattern",
        help="The pattern used for globbing files or blobs in the source. The supported patterns are '*', '?', "
        "'[seq]', and '[!seq]'.",
    )(function)
    return function


def _reporter(app, no_progress: bool, verb: str):
    return Reporter(verb, show_bar=not no_progress and sys.stderr.isatty(), quiet=app.globals.only_show_errors)


@group()
def storage() -> None:
    """Upload and download datasets in Azure Blob and Azure Files."""


@storage.group("blob")
def blob() -> None:
    """Upload, download, list and look at blobs."""


@storage.group("file")
def file() -> None:
    """Upload, download, list and look at files of Azure file shares."""


@storage.group("container")
def container() -> None:
    """Manage blob containers."""


@storage.group("share")
def share() -> None:
    """Manage file shares."""


@blob.command("upload-batch")
@click.option("-s", "--source", required=True, help="The directory where the files to be uploaded are located.")
@click.option("-d", "--destination", required=True, help=_DESTINATION_HELP["blob"])
@click.option("--destination-path", default="", help="The destination path that will be prepended to the blob name.")
@_transfer_options
@click.option(
    "--overwrite", is_flag=True, help="Replace blobs that already exist. Without it they are skipped with a warning."
)
@click.option("--content-type", help="The content MIME type. Default: guessed from each file name.")
@click.option("--create-container", is_flag=True, help="Create the container if it does not exist. Not in az.")
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Follow symbolic links that lead out of the source (and links to folders). Without it they are "
    "skipped with a warning. Not in az.",
)
@storage_account_options
@pass_app
def blob_upload_batch(
    app,
    source,
    destination,
    destination_path,
    pattern,
    dryrun,
    skip_unchanged,
    max_connections,
    no_progress,
    overwrite,
    content_type,
    create_container,
    follow_symlinks,
    **account,
):
    """Upload files from a local directory to a blob container, many at once.

    \b
    Examples:
      Upload all files that end with .py.
        batchai storage blob upload-batch -d mycontainer --account-name mystorageaccount
          --account-key 00000000 -s <path-to-directory> --pattern "*.py"
      Upload a dataset, then only what changed since.
        batchai storage blob upload-batch -s ./data -d datasets --destination-path cifar10 --skip-unchanged
    """
    from batchai_cli.services import transfer

    summary = transfer.upload_batch(
        _open("blob", destination, account, transfer=True),
        source,
        destination_path=destination_path,
        pattern=pattern,
        dryrun=dryrun,
        overwrite=overwrite,
        skip_unchanged=skip_unchanged,
        max_connections=max_connections,
        content_type=content_type,
        create_destination=create_container,
        follow_symlinks=follow_symlinks,
        reporter=_reporter(app, no_progress, "Uploaded"),
    )
    return [
        {"Blob": r["url"], "Type": r["content_type"], "Last Modified": r["last_modified"], "eTag": r["etag"]}
        for r in summary["uploaded"]
    ]


@blob.command("download-batch")
@click.option("-s", "--source", required=True, help=_SOURCE_HELP["blob"])
@click.option("-d", "--destination", required=True, help="The existing destination folder for this download operation.")
@_transfer_options
@click.option("--overwrite", is_flag=True, help="Replace local files that exist. Without it they are an error.")
@storage_account_options
@pass_app
def blob_download_batch(
    app, source, destination, pattern, dryrun, skip_unchanged, max_connections, no_progress, overwrite, **account
):
    """Download blobs from a blob container recursively, many at once.

    \b
    Examples:
      Download all blobs that end with .py
        batchai storage blob download-batch -d . --pattern "*.py" -s mycontainer --account-name mystorageaccount
          --account-key 00000000
    """
    from batchai_cli.services import transfer

    summary = transfer.download_batch(
        _open("blob", source, account, transfer=True),
        destination,
        pattern=pattern,
        dryrun=dryrun,
        overwrite=overwrite,
        skip_unchanged=skip_unchanged,
        max_connections=max_connections,
        reporter=_reporter(app, no_progress, "Downloaded"),
    )
    return [r["path"] for r in summary["downloaded"]]


@file.command("upload-batch")
@click.option("-s", "--source", required=True, help="The directory to upload files from.")
@click.option("-d", "--destination", required=True, help=_DESTINATION_HELP["file"])
@click.option("--destination-path", default="", help="The directory where the source data is copied to.")
@_transfer_options
@click.option("--content-type", help="The content MIME type. Default: guessed from each file name.")
@click.option("--create-share", is_flag=True, help="Create the share if it does not exist. Not in az.")
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Follow symbolic links that lead out of the source (and links to folders). Without it they are "
    "skipped with a warning. Not in az.",
)
@storage_account_options
@pass_app
def file_upload_batch(
    app,
    source,
    destination,
    destination_path,
    pattern,
    dryrun,
    skip_unchanged,
    max_connections,
    no_progress,
    content_type,
    create_share,
    follow_symlinks,
    **account,
):
    """Upload files from a local directory to an Azure Storage File Share in a batch operation.

    \b
    Examples:
      Upload files from a local directory to an Azure Storage File Share in a batch operation.
        batchai storage file upload-batch --destination myshare --source . --account-name mystorageaccount
          --account-key 00000000
    """
    from batchai_cli.services import transfer

    summary = transfer.upload_batch(
        _open("file", destination, account, transfer=True),
        source,
        destination_path=destination_path,
        pattern=pattern,
        dryrun=dryrun,
        overwrite=True,  # az's file upload-batch always replaces
        skip_unchanged=skip_unchanged,
        max_connections=max_connections,
        content_type=content_type,
        create_destination=create_share,
        follow_symlinks=follow_symlinks,
        reporter=_reporter(app, no_progress, "Uploaded"),
    )
    if dryrun:
        return [{"File": r["url"], "Type": r["content_type"]} for r in summary["uploaded"]]
    return [r["url"] for r in summary["uploaded"]]


@file.command("download-batch")
@click.option("-s", "--source", required=True, help=_SOURCE_HELP["file"])
@click.option("-d", "--destination", required=True, help="The local directory where the files are downloaded to.")
@_transfer_options
@storage_account_options
@pass_app
def file_download_batch(
    app, source, destination, pattern, dryrun, skip_unchanged, max_connections, no_progress, **account
):
    """Download files from an Azure Storage File Share to a local directory in a batch operation.

    \b
    Examples:
      Download files from an Azure Storage File Share to a local directory in a batch operation.
        batchai storage file download-batch --destination . --source myshare --account-name mystorageaccount
          --account-key 00000000
    """
    from batchai_cli.services import transfer

    summary = transfer.download_batch(
        _open("file", source, account, transfer=True),
        destination,
        pattern=pattern,
        dryrun=dryrun,
        overwrite=True,  # az's file download-batch always replaces
        skip_unchanged=skip_unchanged,
        max_connections=max_connections,
        reporter=_reporter(app, no_progress, "Downloaded"),
    )
    return [r["url"] for r in summary["downloaded"]]


@container.command("create")
@click.option("-n", "--name", required=True, help="The container name.")
@click.option("--fail-on-exist", is_flag=True, help="Throw an exception if the container already exists.")
@storage_account_options
@pass_app
def container_create(app, name, fail_on_exist, **account):
    """Create a container in a storage account.

    \b
    Examples:
      Create a storage container in a storage account.
        batchai storage container create -n mycontainer --account-name mystorageaccount --account-key 00000000
    """
    from batchai_cli.services import transfer

    return transfer.create_container(_open("blob", name, account), fail_on_exist=fail_on_exist)


@share.command("create")
@click.option("-n", "--name", required=True, help="The file share name.")
@click.option(
    "--fail-on-exist", is_flag=True, help="Specify whether to throw an exception when the file share already exists."
)
@storage_account_options
@pass_app
def share_create(app, name, fail_on_exist, **account):
    """Create a new file share under the specified account.

    \b
    Examples:
      Create a file share.
        batchai storage share create -n myshare --account-name mystorageaccount --account-key 00000000
    """
    from batchai_cli.services import transfer

    return transfer.create_container(_open("file", name, account), fail_on_exist=fail_on_exist)


class Reporter:
    """A transfer's progress bar (rich, on a terminal) and its one-line summary on stderr."""

    def __init__(self, verb: str, *, show_bar: bool, quiet: bool):
        self.verb = verb
        self.quiet = quiet
        self.show_bar = show_bar and not quiet
        self.progress: Any = None
        self.task: Any = None
        self.files_total = 0
        self.files_done = 0

    def start(self, files: int, total_bytes: int) -> None:
        if not self.show_bar or not files:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.files_total = files
        console = Console(file=sys.stderr, highlight=False, markup=False, emoji=False)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),  # MiB, as the summary line says
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self.progress.start()
        description = "uploading" if self.verb == "Uploaded" else "downloading"
        self.task = self.progress.add_task(description, total=total_bytes, files=f"0/{files} files")

    def advance(self, nbytes: int) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, nbytes)

    def file_done(self, path: str) -> None:
        if self.progress is not None:
            self.files_done += 1
            self.progress.update(self.task, files=f"{self.files_done}/{self.files_total} files")

    def finish(self, summary: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
        if self.quiet:
            return
        if summary["dryrun"]:
            line = (
                f"Dry run: {_files(summary['files'])} ({_size(summary['bytes'])}) would be {self.verb.lower()}; "
                "nothing was sent."
            )
        else:
            line = (
                f"{self.verb} {_files(summary['files'])} ({_size(summary['bytes'])}) in {summary['seconds']:.2f} s; "
                f"skipped {summary['skipped']}, failed {summary['failed']}."
            )
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _files(count: int) -> str:
    return "1 file" if count == 1 else f"{count} files"


def _size(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{nbytes} bytes"
