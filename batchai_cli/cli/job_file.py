"""`batchai job file` (list, stream, download) and `batchai cluster file list`: a job's output and
a cluster's setup-task output, read straight from storage while the job runs.

`follow` is also what `job create --stream` runs. It writes the file's text to stdout as it
arrives; everything else (waiting, the offset reached on Ctrl-C) goes to stderr.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

import click

from batchai_cli.cli import tables
from batchai_cli.cli.job_reports import report_end, report_wait
from batchai_cli.cli.options import (
    Outcome,
    ReaderGone,
    cluster_option,
    complete_names_of,
    experiment_option,
    group,
    name_option,
    pass_app,
    resource_group_option,
    workspace_option,
)
from batchai_cli.cli.targets import resolve_targets

# services.files loads the storage layer, so it is imported in the commands, not here: `batchai job
# list` and `batchai cluster show` load this module too.
STDOUTERR = "stdouterr"
_ID_HELP = (
    'The Id of the job\'s output directory (as specified by "id" element in outputDirectories collection in '
    "the job create parameters)."
)
_EXPIRY = click.option(
    "--expiry",
    type=click.IntRange(5, 600),
    default=60,
    show_default=True,
    help="Time in minutes for how long generated download URLs should remain valid (5-600).",
)


def _job_options(function):
    for decorator in reversed(
        [
            resource_group_option(),
            workspace_option(),
            experiment_option(),
            name_option("-j", "--job", kind="job", help="Name of job.", required=True),
            click.option(
                "-d",
                "--output-directory-id",
                default=STDOUTERR,
                show_default=True,
                help=_ID_HELP,
                shell_complete=complete_names_of("output_directory"),
            ),
            click.option(
                "-p",
                "--path",
                default=".",
                show_default=True,
                help="Relative path in the given output directory ('..' is refused).",
            ),
        ]
    ):
        function = decorator(function)
    return function


def _job(app, resource_group, workspace, experiment, name):
    (rid,) = resolve_targets(
        app,
        "job",
        (),
        resource_group,
        [("workspace", workspace, "--workspace"), ("experiment", experiment, "--experiment"), ("job", name, "--job")],
    )
    return rid


@group("file")
def file() -> None:
    """Commands to list, stream and download files in job's output directories."""


@file.command("list", table=tables.job_files)
@_job_options
@_EXPIRY
@pass_app
def list_(app, resource_group, workspace, experiment, name, output_directory_id, path, expiry):
    """List job's output files in a directory with given id.

    Files get download URLs: SAS URLs (read and list, valid for --expiry minutes) on Azure storage,
    file:// URLs for a local folder. Works while the job runs.

    \b
    Examples:
      List files in the standard output directory of the job.
        batchai job file list -g MyResourceGroup -w MyWorkspace -e MyExperiment -j MyJob -o table
      List files in a folder 'MyFolder/MySubfolder' of an output directory with id 'MODELS'.
        batchai job file list -g MyResourceGroup -w MyWorkspace -e MyExperiment -j MyJob \\
            -d MODELS -p MyFolder/MySubfolder
      Make the download URLs valid for 15 minutes.
        batchai job file list -g MyResourceGroup -w MyWorkspace -e MyExperiment -j MyJob --expiry 15
    """
    from batchai_cli.services import files

    rid = _job(app, resource_group, workspace, experiment, name)
    return files.list_files(app.session, rid, output_directory_id=output_directory_id, path=path, expiry_minutes=expiry)


@file.command("stream")
@_job_options
@click.option(
    "-f",
    "--file-name",
    required=True,
    help="The name of the file to stream.",
    shell_complete=complete_names_of("job_file"),
)
@click.option(
    "--offset", type=click.IntRange(min=0, max=2**63 - 1), help="Start at this byte offset (as printed on Ctrl-C)."
)
@click.option("--tail", type=click.IntRange(min=0), metavar="N", help="Start with the last N lines.")
@click.option("--wait", is_flag=True, help="When the job ends, exit with its exit code (else 0).")
@pass_app
def stream(app, resource_group, workspace, experiment, name, output_directory_id, path, file_name, offset, tail, wait):
    """Stream the content of a file (similar to 'tail -f').

    Waits for the job to create the file, then prints what is written to it as it arrives, until
    the job has ended; the file's last bytes are always shown. Ctrl-C stops it (exit code 0) and
    prints the byte offset reached, to resume from with --offset.

    \b
    Examples:
      Stream standard output file of the job.
        batchai job file stream -g MyResourceGroup -w MyWorkspace -e MyExperiment -j MyJob -f stdout.txt
      Stream a file 'log.txt' from a folder 'logs' of an output directory with id 'OUTPUTS'.
        batchai job file stream -g MyResourceGroup -w MyWorkspace -e MyExperiment -j MyJob \\
            -d OUTPUTS -p logs -f log.txt
      Show the last 20 lines and follow, then exit with the job's exit code (for CI).
        batchai job file stream -g MyResourceGroup -w MyWorkspace -e MyExperiment -j MyJob -f stdout.txt \\
            --tail 20 --wait
    """
    from batchai_cli.errors import UsageError

    if offset is not None and tail is not None:
        raise UsageError("--offset and --tail cannot be used together.")
    rid = _job(app, resource_group, workspace, experiment, name)
    return Outcome(
        None,
        follow(
            app,
            rid,
            file_name,
            output_directory_id=output_directory_id,
            path=path,
            offset=offset or 0,
            tail=tail,
            wait=wait,
        ),
    )


@file.command("download")
@_job_options
@click.option(
    "--dest",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Local folder to download into; created if missing.",
)
@click.option(
    "--max-connections", type=click.IntRange(1, 64), default=16, show_default=True, help="Files downloaded at once."
)
@click.option("--no-progress", is_flag=True, help="Do not show a progress bar.")
@pass_app
def download(
    app, resource_group, workspace, experiment, name, output_directory_id, path, dest, max_connections, no_progress
):
    """Download all files of a job's output directory, skipping unchanged ones.

    Files are fetched many at once. Local files whose content already matches are left alone, so
    running it again fetches only what changed. Prints the paths downloaded, relative to the
    output directory.

    \b
    Examples:
      Download the output directory with id 'MODEL' into ./model.
        batchai job file download -g MyResourceGroup -w MyWorkspace -e MyExperiment -j MyJob -d MODEL --dest model
    """
    from batchai_cli.cli.storage import Reporter
    from batchai_cli.services import files

    rid = _job(app, resource_group, workspace, experiment, name)
    reporter = Reporter(
        "Downloaded", show_bar=not no_progress and sys.stderr.isatty(), quiet=app.globals.only_show_errors
    )
    summary = files.download_files(
        app.session,
        rid,
        dest,
        output_directory_id=output_directory_id,
        path=path,
        max_connections=max_connections,
        reporter=reporter,
    )
    return [record["path"] for record in summary["downloaded"]]


# -- cluster file ------------------------------------------------------------------------------


@group("file")
def cluster_file() -> None:
    """Commands to work with files generated by node setup task."""


@cluster_file.command("list", table=tables.cluster_files)
@resource_group_option()
@workspace_option()
@cluster_option()
@click.option(
    "-p",
    "--path",
    default=".",
    show_default=True,
    help="Relative path of a subfolder inside of the node setup task output directory.",
)
@_EXPIRY
@pass_app
def cluster_file_list(app, resource_group, workspace, cluster_name, path, expiry):
    """List setup task files for a cluster.

    The setup task's output must be on a cluster-level Azure File share or blob container
    ($AZ_BATCHAI_MOUNT_ROOT/...), as az required, or in a local folder (an absolute
    stdOutErrPathPrefix).

    \b
    Examples:
      List the setup task's output files.
        batchai cluster file list -g MyResourceGroup -w MyWorkspace -c MyCluster -o table
      List the files of a subfolder, with download URLs valid for 15 minutes.
        batchai cluster file list -g MyResourceGroup -w MyWorkspace -c MyCluster -p sub/dir --expiry 15
    """
    from batchai_cli.services import files

    (rid,) = resolve_targets(
        app,
        "cluster",
        (),
        resource_group,
        [("workspace", workspace, "--workspace"), ("cluster", cluster_name, "--cluster")],
    )
    return files.list_cluster_files(app.session, rid, path=path, expiry_minutes=expiry)


# -- following a file --------------------------------------------------------------------------


class _Interrupts:
    """Ctrl-C between writes stops at once; during a write it waits for the write to finish, so
    the offset printed is exactly what reached stdout (resuming repeats and loses nothing)."""

    def __init__(self) -> None:
        self.critical = False
        self.pending = False
        self.previous = None

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, _signum, _frame) -> None:
        if self.critical:
            self.pending = True
        else:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self):
        self.critical = True
        try:
            yield
        finally:
            self.critical = False
        if self.pending:
            raise KeyboardInterrupt


def _write(text: str) -> None:
    out = sys.stdout
    try:
        out.write(text)
    except UnicodeEncodeError:  # a terminal that cannot show some characters still gets the rest
        out.write(text.encode(out.encoding or "ascii", "replace").decode(out.encoding or "ascii"))
    out.flush()


def follow(
    app,
    rid,
    file_name: str,
    *,
    output_directory_id: str = STDOUTERR,
    path: str = ".",
    offset: int = 0,
    tail: int | None = None,
    wait: bool = False,
) -> int:
    """Write a job's file to stdout until the job ends. Returns the exit code: the job's own with
    `wait`, else 0."""
    from batchai_cli import log
    from batchai_cli.services import files

    stream_ = files.FileStream(
        app.session, rid, file_name, output_directory_id=output_directory_id, path=path, offset=offset, tail=tail
    )
    reached, ended, missing = offset, None, None
    try:
        with _Interrupts() as interrupts:
            for kind, value in stream_:
                if kind == "text":
                    with interrupts.deferred():
                        _write(value.text)
                        reached = value.offset
                elif kind == "found":
                    reached = value["offset"]
                    log.info('File found at "%s". Start streaming', value["url"])
                elif kind == "waiting":
                    log.warning(
                        'The file "%s" not found. Waiting for the job to generate it.%s',
                        value["name"],
                        f" This job writes {_did_you_mean(value['similar'])}" if value["similar"] else "",
                    )
                elif kind == "missing":
                    missing = value
                elif kind == "end":
                    ended = value
    except KeyboardInterrupt:
        sys.stderr.write(f"Stopped at byte offset {reached}; resume with --offset {reached}\n")
        sys.stderr.flush()
        return 0
    except BrokenPipeError:
        # The reader left (`| head`): main() ends quietly with 0, where Click would make it 1.
        raise ReaderGone() from None
    if missing is not None:
        from batchai_cli.errors import NotFound

        raise NotFound(
            f'The file "{missing["name"]}" not found for the completed job.',
            hint=f"It has {_did_you_mean(missing['similar'])}"
            if missing["similar"]
            else "List its files with `batchai job file list`.",
        )
    if wait and ended is not None:
        return report_end(ended)
    return 0


def _did_you_mean(names: list[str]) -> str:
    return f"{', '.join(names)}: did you mean {names[0]}?"


def follow_created(app, rid, *, stream: bool, wait: bool):
    """`job create --stream/--wait`: follow the new job's stdout, or wait for it; the exit code is
    the job's with --wait. Returns what create prints (nothing when the log was streamed)."""
    if stream:
        from batchai_cli.services import files

        properties = app.session.state.get_private(rid).get("properties") or {}
        return Outcome(None, follow(app, rid, files.main_log_name(properties), wait=wait))
    from batchai_cli.services.jobs import get_job

    code = report_wait(app, rid, interval=0.25)
    return Outcome(get_job(app.session, rid), code)
