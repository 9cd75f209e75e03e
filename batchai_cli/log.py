"""Messages from library code for the person at the terminal: warning(), info(), debug().

Services and backends call these instead of printing; the CLI decides where they go and which
levels show (--only-show-errors, --verbose, --debug). This stands in for the logging module on
the start-up path, which costs more to import than the whole budget `batchai --help` has;
`--debug` still routes the stdlib loggers (azure.core's HTTP logging) to stderr.
"""

from __future__ import annotations

from collections.abc import Callable

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40
_state: dict = {"level": WARNING, "sink": None}


def configure(level: int, sink: Callable[[str, str], None]) -> None:
    """Show messages at `level` and above through `sink(level_name, text)`."""
    _state["level"] = level
    _state["sink"] = sink


def enabled(level: int) -> bool:
    return level >= _state["level"] and _state["sink"] is not None


def _emit(level: int, name: str, message: str, args: tuple) -> None:
    if enabled(level):
        _state["sink"](name, message % args if args else message)


def debug(message: str, *args) -> None:
    _emit(DEBUG, "DEBUG", message, args)


def info(message: str, *args) -> None:
    _emit(INFO, "INFO", message, args)


def warning(message: str, *args) -> None:
    _emit(WARNING, "WARNING", message, args)
