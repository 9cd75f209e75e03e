"""`batchai validate job|cluster|file-server FILE...`: check config files as an editor or a CI step would.

Problems go to stderr one per line, as compilers print them (`job.json:12:5: error: $.properties.nodeCount:
expected an integer, got "two"`), errors with the offending line and a caret. With -o, stdout also
gets the list of {file, line, column, path, severity, message} a CI step turns into annotations.
The exit code is 1 when any file has an error.
"""

from __future__ import annotations

import sys

import click

from batchai_cli.cli.options import Outcome, group, pass_app

_KINDS = {
    "job": ("job", "job files (job.json, for `job create -f`)", "job.json"),
    "cluster": ("cluster", "cluster files (cluster.json, for `cluster create -f`)", "cluster.json"),
    "file-server": ("file-server", "file server files (for `file-server create -f`)", "nfs.json"),
}


@group()
def validate() -> None:
    """Check job, cluster and file-server files."""


def _check(app, kind: str, files: tuple[str, ...], strict: bool):
    from batchai_cli.cli import terminal
    from batchai_cli.config import format_problems, problem_dict, validate_file

    rows: list[dict] = []
    invalid = 0
    quiet = app.globals.only_show_errors
    for file in files:
        problems = validate_file(file, kind, strict=strict)
        if any(problem.severity == "error" for problem in problems):
            invalid += 1
        shown = [p for p in problems if p.severity == "error"] if quiet else problems
        sys.stderr.write(format_problems(shown, file))
        rows.extend(problem_dict(problem, file) for problem in problems)
    errors = sum(row["severity"] == "error" for row in rows)
    if invalid:
        plural = "s" if errors != 1 else ""
        terminal.error(
            f"{invalid} of {len(files)} {kind} file{'s' if len(files) != 1 else ''} "
            f"{'is' if invalid == 1 else 'are'} not valid ({errors} error{plural})."
        )
        return Outcome(rows if app.globals.output else None, 1)
    if not quiet:
        warned = len(rows)
        also = f" ({warned} warning{'s' if warned != 1 else ''})" if warned else ""
        terminal.summary(f"{len(files)} {kind} file{'s' if len(files) != 1 else ''} valid{also}.")
    # Without -o the problems on stderr are the whole answer; stdout stays empty.
    return rows if app.globals.output else None


def _command(name: str) -> None:
    kind, what, example = _KINDS[name]

    @validate.command(name)
    @click.argument("files", nargs=-1, required=True, metavar="FILE...")
    @click.option(
        "--strict",
        is_flag=True,
        help="Treat warnings (unknown keys, quoted numbers, placeholders left to fill in) as errors.",
    )
    @pass_app
    def command(app, files, strict):
        return _check(app, kind, files, strict)

    command.help = (
        f"Check {what}.\n\n"
        "Every error at once, each with its JSON path, line and column. "
        "The API version comes from the file's $schema (2017-09-01-preview, 2018-03-01 or 2018-05-01; "
        "2018-05-01 when absent). Unknown keys, which az silently dropped, are warnings. The exit code is 1 "
        "when any file has an error.\n\n"
        "\b\n"
        "Examples:\n"
        f"  Check a file.\n"
        f"    batchai validate {name} {example}\n"
        "  Check every file in a CI step: fail on warnings too, and keep the problems (file, line, column,\n"
        "  path, severity, message) as JSON for annotations.\n"
        f"    batchai validate {name} --strict -o json configs/*.json > problems.json\n"
    )


for _name in _KINDS:
    _command(_name)
