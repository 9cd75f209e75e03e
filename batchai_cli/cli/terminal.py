"""Everything the CLI says to a person goes to stderr through here; stdout carries data only.

Messages look like az's: `ERROR: ...`, `WARNING: ...`, colored only on a terminal without NO_COLOR.
Library code reports through batchai_cli.log; `configure_logging` decides what reaches stderr
(--only-show-errors, the default, --verbose, --debug).
"""

from __future__ import annotations

import os
import sys

from batchai_cli import log

_COLORS = {"ERROR": "\x1b[91m", "WARNING": "\x1b[33m", "INFO": "\x1b[36m", "DEBUG": "\x1b[2m"}
_RESET = "\x1b[0m"


def _use_color(stream) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def _write(level: str, message: str) -> None:
    stream = sys.stderr
    text = f"{level}: {message}"
    if _use_color(stream):
        text = f"{_COLORS[level]}{text}{_RESET}"
    stream.write(text + "\n")
    stream.flush()


def error(message: str, *, hint: str | None = None) -> None:
    _write("ERROR", f"{message} {hint}" if hint else message)


def warning(message: str) -> None:
    log.warning("%s", message)


def summary(message: str) -> None:
    """A command's one-line result for people, plain on stderr (a linter's "all files valid")."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def info(message: str) -> None:
    log.info("%s", message)


def report(exc) -> None:
    """Print a BatchAIError: config problems one per line (file:line:col, with the offending line
    and a caret for errors), then the message."""
    from batchai_cli.errors import InvalidConfig

    if isinstance(exc, InvalidConfig) and exc.problems:
        from batchai_cli.config.report import format_problems

        sys.stderr.write(format_problems(exc.problems, exc.file))
    error(exc.message, hint=exc.hint)


def traceback() -> None:
    import traceback as tb

    tb.print_exc(file=sys.stderr)


_debug_handler = None


def configure_logging(*, verbose: bool = False, debug: bool = False, only_errors: bool = False) -> None:
    """Route batchai_cli.log (and, under --debug, the stdlib loggers such as azure's) to stderr.

    Called once per command, so a --debug command in a long-lived process (tests, the agent) does
    not leave the stdlib loggers at DEBUG for the commands after it.
    """
    global _debug_handler
    level = log.ERROR if only_errors else log.DEBUG if debug else log.INFO if verbose else log.WARNING
    log.configure(level, _write)
    if not debug and _debug_handler is None:
        return  # the stdlib logging module is never imported on the plain path
    import logging

    root = logging.getLogger()
    if debug and _debug_handler is None:

        class StderrHandler(logging.Handler):
            # Looks sys.stderr up at each record, so test runners that swap it capture the output.
            def emit(self, record: logging.LogRecord) -> None:
                _write(record.levelname if record.levelname in _COLORS else "DEBUG", self.format(record))

        _debug_handler = StderrHandler()
        root.addHandler(_debug_handler)
        root.setLevel(logging.DEBUG)
    elif not debug:
        root.removeHandler(_debug_handler)
        root.setLevel(logging.WARNING)
        _debug_handler = None


def confirm(message: str = "Are you sure you want to perform this operation?", *, skip: bool = False) -> None:
    """Ask y/n on the terminal, as az does (skip: -y was given); refuse when there is no terminal."""
    from batchai_cli.errors import Cancelled

    if skip:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise Cancelled("Unable to prompt for confirmation as no tty available. Use --yes.")
    while True:
        sys.stderr.write(f"{message} (y/n): ")
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:
            raise Cancelled("Operation cancelled.")
        answer = answer.strip().lower()
        if answer in ("y", "yes"):
            return
        if answer in ("n", "no"):
            raise Cancelled("Operation cancelled.")
