"""`batchai storage blob|file list, show, download, delete, generate-sas, url`: storage looked at
outside a job, with az's option names and JSON (services/browse.py). They join the groups of
cli/storage.py (upload-batch, download-batch, container and share create); the root group loads
`storage` from here, so that the whole group is one import with no circle."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import click

from batchai_cli.cli.options import pass_app
from batchai_cli.cli.storage import _open, blob, file, storage, storage_account_options

__all__ = ["storage"]  # the whole group, with the commands below


class _NumResults(click.ParamType):
    name = "N|*"

    def convert(self, value, param, ctx):
        if value is None or value == "*":
            return None if value == "*" else value
        try:
            number = int(value)
        except ValueError:
            self.fail(f"'{value}' is not a number nor *.", param, ctx)
        if number < 1:
            self.fail("it must be 1 or more, or * for all.", param, ctx)
        return number


def _num_results_options(function):
    function = click.option(
        "--show-next-marker", is_flag=True, help="Show nextMarker in the result when there are more results."
    )(function)
    function = click.option("--marker", help="Where the previous page ended (its nextMarker).")(function)
    function = click.option(
        "--num-results",
        type=_NumResults(),
        default="5000",
        show_default=True,
        help="The most results to return; '*' returns all.",
    )(function)
    return function


def _paged(page: list, next_marker: str | None, show_next_marker: bool):
    from batchai_cli import log

    if next_marker:
        if show_next_marker:
            return [*page, {"nextMarker": next_marker}]
        log.warning("Next Marker: %s (more results: give --marker %s)", next_marker, next_marker)
    return page


def _expiry(value: str | None) -> datetime:
    if not value:
        return datetime.now(timezone.utc) + timedelta(hours=1)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a UTC datetime such as 2030-01-31T12:00Z.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


_SAS_OPTIONS = [
    click.option(
        "--permissions",
        default="r",
        show_default=True,
        help="The permissions the SAS grants: (r)ead (a)dd (c)reate (w)rite (d)elete (l)ist (files: no add).",
    ),
    click.option(
        "--expiry",
        help="The UTC datetime (Y-m-d'T'H:M'Z') at which the SAS becomes invalid. Default: in one hour.",
    ),
    click.option("--full-uri", is_flag=True, help="Give the full URL with the SAS, not only the token."),
]


def _sas_options(function):
    for option in reversed(_SAS_OPTIONS):
        function = option(function)
    return function


# -- blobs ---------------------------------------------------------------------------------------


def _container(function):
    return click.option("-c", "--container-name", required=True, help="The container name.")(function)


def _blob_name(function):
    return click.option("-n", "--name", required=True, help="The blob name.")(function)


@blob.command("list")
@_container
@click.option("--prefix", default="", help="Only blobs whose names begin with this prefix.")
@_num_results_options
@storage_account_options
@pass_app
def blob_list(app, container_name, prefix, num_results, marker, show_next_marker, **account):
    """List blobs in a container, in name order.

    \b
    Examples:
      List the blobs of a dataset.
        batchai storage blob list -c datasets --prefix cifar10/ -o table
      List all blobs, however many.
        batchai storage blob list -c datasets --num-results "*" --query "[].name" -o tsv
    """
    from batchai_cli.services import browse

    page, next_marker = browse.list_blobs(
        _open("blob", container_name, account), prefix=prefix, num_results=num_results, marker=marker
    )
    return _paged(page, next_marker, show_next_marker)


@blob.command("show")
@_container
@_blob_name
@storage_account_options
@pass_app
def blob_show(app, container_name, name, **account):
    """Show a blob's properties.

    \b
    Examples:
      Show a blob.
        batchai storage blob show -c mycontainer -n data/train.csv
    """
    from batchai_cli.services import browse

    return browse.show_blob(_open("blob", container_name, account), name)


@blob.command("download")
@_container
@_blob_name
@click.option("-f", "--file", "file_path", required=True, help="Path of the file to write (a folder: into it).")
@storage_account_options
@pass_app
def blob_download(app, container_name, name, file_path, **account):
    """Download a blob to a file.

    \b
    Examples:
      Download a blob.
        batchai storage blob download -c mycontainer -n model.bin -f ./model.bin
    """
    from batchai_cli.services import browse

    return browse.download(_open("blob", container_name, account), name, file_path, kind="blob")


@blob.command("delete")
@_container
@_blob_name
@storage_account_options
@pass_app
def blob_delete(app, container_name, name, **account):
    """Delete a blob.

    \b
    Examples:
      Delete a blob.
        batchai storage blob delete -c mycontainer -n old/model.bin
    """
    from batchai_cli.services import browse

    browse.delete(_open("blob", container_name, account), name, kind="blob")


@blob.command("generate-sas")
@_container
@_blob_name
@_sas_options
@storage_account_options
@pass_app
def blob_generate_sas(app, container_name, name, permissions, expiry, full_uri, **account):
    """Generate a shared access signature for a blob.

    \b
    Examples:
      A read-only URL for a blob, valid until the end of January 2030.
        batchai storage blob generate-sas -c mycontainer -n model.bin --expiry 2030-01-31T23:59Z --full-uri -o tsv
    """
    from batchai_cli.services import browse

    store = _open("blob", container_name, account)
    return browse.generate_sas(
        store, name, permissions=permissions, expiry=_expiry(expiry), full_uri=full_uri, kind="blob"
    )


@blob.command("url")
@_container
@_blob_name
@storage_account_options
@pass_app
def blob_url(app, container_name, name, **account):
    """Create the URL to access a blob (without a SAS).

    \b
    Examples:
      The URL of a blob.
        batchai storage blob url -c mycontainer -n model.bin -o tsv
    """
    return _open("blob", container_name, account).url(name)


# -- files ---------------------------------------------------------------------------------------


def _share(function):
    return click.option("-s", "--share-name", required=True, help="The file share name.")(function)


def _file_path(function):
    return click.option("-p", "--path", required=True, help="The path to the file within the file share.")(function)


@file.command("list")
@_share
@click.option("-p", "--path", default="", help="The directory path within the file share.")
@click.option("--exclude-dir", is_flag=True, help="List only files in the given share.")
@_num_results_options
@storage_account_options
@pass_app
def file_list(app, share_name, path, exclude_dir, num_results, marker, show_next_marker, **account):
    """List files and directories in a directory of a file share, in name order.

    \b
    Examples:
      List the files and directories at the top of a share.
        batchai storage file list -s myshare -o table
      List the files of one directory.
        batchai storage file list -s myshare -p logs/run1 --exclude-dir
    """
    from batchai_cli.services import browse

    page, next_marker = browse.list_files(
        _open("file", share_name, account), path=path, num_results=num_results, marker=marker, exclude_dir=exclude_dir
    )
    return _paged(page, next_marker, show_next_marker)


@file.command("show")
@_share
@_file_path
@storage_account_options
@pass_app
def file_show(app, share_name, path, **account):
    """Show a file's properties.

    \b
    Examples:
      Show a file.
        batchai storage file show -s myshare -p logs/stdout.txt
    """
    from batchai_cli.services import browse

    return browse.show_file(_open("file", share_name, account), path)


@file.command("download")
@_share
@_file_path
@click.option("--dest", required=True, help="Path of the file to write (a folder: into it).")
@storage_account_options
@pass_app
def file_download(app, share_name, path, dest, **account):
    """Download a file to a local file.

    \b
    Examples:
      Download a file.
        batchai storage file download -s myshare -p logs/stdout.txt --dest .
    """
    from batchai_cli.services import browse

    return browse.download(_open("file", share_name, account), path, dest, kind="file")


@file.command("delete")
@_share
@_file_path
@storage_account_options
@pass_app
def file_delete(app, share_name, path, **account):
    """Delete a file.

    \b
    Examples:
      Delete a file.
        batchai storage file delete -s myshare -p old/model.bin
    """
    from batchai_cli.services import browse

    browse.delete(_open("file", share_name, account), path, kind="file")


@file.command("generate-sas")
@_share
@_file_path
@_sas_options
@storage_account_options
@pass_app
def file_generate_sas(app, share_name, path, permissions, expiry, full_uri, **account):
    """Generate a shared access signature for a file.

    \b
    Examples:
      A read-only URL for a file, valid for one hour.
        batchai storage file generate-sas -s myshare -p logs/stdout.txt --full-uri -o tsv
    """
    from batchai_cli.services import browse

    store = _open("file", share_name, account)
    return browse.generate_sas(
        store, path, permissions=permissions, expiry=_expiry(expiry), full_uri=full_uri, kind="file"
    )


@file.command("url")
@_share
@_file_path
@storage_account_options
@pass_app
def file_url(app, share_name, path, **account):
    """Create the URL to access a file (without a SAS).

    \b
    Examples:
      The URL of a file.
        batchai storage file url -s myshare -p logs/stdout.txt -o tsv
    """
    return _open("file", share_name, account).url(path)
