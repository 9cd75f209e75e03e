"""Problems found in a document, and how each is placed in the file the user wrote.

Checks work on the normalized document (always `{"properties": {...}}`, upgraded to 2018-05-01) and
report Issues with paths into it. The Locator maps those paths back to the user's file (flat form,
renamed old keys) and to a line and column, producing errors.ConfigProblem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batchai_cli.config.loader import JsonPath, Positions, describe, json_path
from batchai_cli.errors import ConfigProblem

__all__ = ["Issue", "Locator", "describe", "has_errors", "sort_problems"]

SEVERITY_ORDER = {"error": 0, "warning": 1, "note": 2}


@dataclass(frozen=True)
class Issue:
    path: JsonPath
    message: str
    severity: str = "error"  # error | warning | note
    anchor: str = "value"  # value | key (the key itself) | parent (the object that lacks the key)


@dataclass
class Locator:
    positions: Positions | None
    flat: bool = False
    renames: dict[JsonPath, JsonPath] = field(default_factory=dict)

    def file_path(self, path: JsonPath) -> JsonPath:
        """The path of the same place in the user's file."""
        path = tuple(path)
        for new, old in sorted(self.renames.items(), key=lambda item: -len(item[0])):
            if path[: len(new)] == new:
                path = old + path[len(new) :]
                break
        if self.flat and path[:1] == ("properties",):
            path = path[1:]
        return path

    def problem(self, issue: Issue, *, strict: bool = False) -> ConfigProblem:
        path = self.file_path(issue.path)
        where = None
        if self.positions is not None:
            if issue.anchor == "key":
                where = self.positions.of_key(path)
            elif issue.anchor == "parent":
                where = self.positions.of_value(path[:-1])
            else:
                where = self.positions.of_value(path)
        line, column = where if where else (None, None)
        severity = "error" if strict and issue.severity == "warning" else issue.severity
        return ConfigProblem(json_path(path), issue.message, line, column, severity)

    def problems(self, issues: list[Issue], *, strict: bool = False) -> list[ConfigProblem]:
        seen: set[tuple] = set()
        out = []
        for issue in issues:
            problem = self.problem(issue, strict=strict)
            key = (problem.json_path, problem.message, problem.severity)
            if key not in seen:
                seen.add(key)
                out.append(problem)
        return sort_problems(out)


def sort_problems(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    """In file order, as compilers print; problems without a position last."""
    far = 1 << 60
    return sorted(problems, key=lambda p: (p.line or far, p.column or far, SEVERITY_ORDER.get(p.severity, 3)))


def has_errors(problems: list[ConfigProblem]) -> bool:
    return any(problem.severity == "error" for problem in problems)
