"""Every error the tool reports on purpose.

This module is a leaf: it imports nothing from batchai_cli, so any layer can raise these.
Each error carries a message (what is wrong) and an optional hint (what to do next).
`batchai_cli.cli.main` is the one place that turns them into a line on stderr and an exit code.
"""

from __future__ import annotations


class BatchAIError(Exception):
    """Base class: a problem the user can act on. Exit code 1."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class UsageError(BatchAIError):
    """The command line itself is wrong (a missing or bad option). Exit code 2, as az."""

    exit_code = 2


class NotFound(BatchAIError):
    """A named resource (workspace, cluster, job, file...) does not exist. Exit code 3, as az."""

    exit_code = 3


class AlreadyExists(BatchAIError):
    """Creating a resource whose name is taken."""


class InvalidState(BatchAIError):
    """The operation does not fit the resource's current state (e.g. deleting a busy workspace)."""


class StateStoreError(BatchAIError):
    """The state file under $BATCHAI_HOME cannot be used: corrupt, locked, unwritable, too new."""


class Cancelled(BatchAIError):
    """The user declined a confirmation prompt, or none could be shown."""


class StorageError(BatchAIError):
    """A storage service failed in a way that is not one of Python's own OSError kinds."""


class EngineError(BatchAIError):
    """An engine (local, slurm) could not schedule or control a job."""


class ConfigProblem:
    """One problem in a job/cluster/file-server file.

    json_path is a JSONPath-like location (``$.properties.nodeCount``); line and column are
    1-based positions in the file when known; severity is "error" or "warning".
    (A plain class, not a dataclass: this module is on every command's start-up path.)
    """

    __slots__ = ("column", "json_path", "line", "message", "severity")

    def __init__(
        self, json_path: str, message: str, line: int | None = None, column: int | None = None, severity: str = "error"
    ):
        self.json_path = json_path
        self.message = message
        self.line = line
        self.column = column
        self.severity = severity

    def _key(self) -> tuple:
        return (self.json_path, self.message, self.line, self.column, self.severity)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigProblem) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"ConfigProblem(json_path={self.json_path!r}, message={self.message!r}, line={self.line!r}, "
            f"column={self.column!r}, severity={self.severity!r})"
        )

    def location(self, file: str | None = None) -> str:
        where = file or ""
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return where


class InvalidConfig(BatchAIError):
    """A job/cluster/file-server file is invalid. Holds every problem found, not only the first."""

    def __init__(
        self,
        message: str,
        problems: list[ConfigProblem] | None = None,
        *,
        file: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, hint=hint)
        self.problems = list(problems or [])
        self.file = file
