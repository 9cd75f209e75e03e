"""Load a job, cluster or file-server file: read, normalize, validate at its own API version, upgrade.

The result is the 2018-05-01 document in the `{"properties": {...}}` form, with the warnings and
upgrade notes found on the way; any error raises one InvalidConfig that holds every problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from batchai_cli.config import checks
from batchai_cli.config.issues import Issue, Locator, has_errors, sort_problems
from batchai_cli.config.loader import read_source
from batchai_cli.config.schemas import CURRENT, KINDS, VERSIONS, SchemaChoice, choose_schema
from batchai_cli.config.validation import check_schema
from batchai_cli.config.versions import upgrade
from batchai_cli.errors import BatchAIError, ConfigProblem, InvalidConfig

EDITOR_KEYS = ("$schema", "$comment")


@dataclass
class Document:
    """A loaded file. `data` is the 2018-05-01 document in the {"properties": {...}} form."""

    path: str
    kind: str
    version: str  # the API version the file was written for (from $schema)
    data: dict
    warnings: list[ConfigProblem] = field(default_factory=list)
    notes: list[ConfigProblem] = field(default_factory=list)
    flat: bool = False  # written without the "properties" wrapper
    locator: Locator | None = field(default=None, repr=False)

    @property
    def properties(self) -> dict:
        return self.data["properties"]


def normalize(data: dict) -> tuple[dict, bool]:
    """The {"properties": {...}} form, and whether the file was flat (az accepted both)."""
    if "properties" in data:
        return data, False
    editor = {key: data[key] for key in EDITOR_KEYS if key in data}
    rest = {key: value for key, value in data.items() if key not in EDITOR_KEYS}
    return {**editor, "properties": rest}, True


def load_document(path: str | os.PathLike, kind: str, *, strict: bool = False) -> Document:
    """Read and check a file written by a person; raise InvalidConfig with every problem found.

    With strict, warnings (unknown keys, quoted numbers, placeholders) count as errors.
    """
    if kind not in KINDS:
        raise BatchAIError(f"A configuration file is one of {', '.join(KINDS)}, not {kind!r}.")
    source = read_source(path)
    data, flat = normalize(source.data)
    locator = Locator(source.positions, flat)
    issues = [
        Issue(dup, "duplicate key; the last one wins (as in az)", "warning", "key")
        for dup in source.positions.duplicates
    ]
    choice = choose_schema(data.get("$schema"))
    issues += _schema_issues(choice, kind)
    if choice.unsupported or (choice.kind not in (None, kind)):
        raise _invalid(source.path, kind, locator.problems(issues, strict=strict))

    data, found = check_schema(data, choice.version, kind)
    issues += found
    data, changes, renames = upgrade(data, choice.version)
    issues += changes
    locator.renames = renames
    issues += checks.check_document(data, kind, toolkit=choice.toolkit)

    problems = locator.problems(issues, strict=strict)
    if has_errors(problems):
        # Upgrade notes describe a request that will not be built: noise next to errors.
        raise _invalid(source.path, kind, [problem for problem in problems if problem.severity != "note"])
    return Document(
        path=source.path,
        kind=kind,
        version=choice.version,
        data=data,
        flat=flat,
        locator=locator,
        warnings=[p for p in problems if p.severity == "warning"],
        notes=[p for p in problems if p.severity == "note"],
    )


def validate_file(path: str | os.PathLike, kind: str, *, strict: bool = False) -> list[ConfigProblem]:
    """Every problem of a file (errors, warnings, upgrade notes), for `batchai validate`."""
    try:
        document = load_document(path, kind, strict=strict)
    except InvalidConfig as exc:
        return exc.problems or [ConfigProblem("", exc.message)]
    return sort_problems(document.warnings + document.notes)


def _schema_issues(choice: SchemaChoice, kind: str) -> list[Issue]:
    where = ("$schema",)
    if choice.unsupported:
        return [Issue(where, f"API version {choice.unsupported} is not one batchai reads ({', '.join(VERSIONS)})")]
    issues = []
    if choice.problem:
        issues.append(Issue(where, choice.problem, "warning"))
    if choice.kind not in (None, kind):
        issues.append(
            Issue(
                where,
                f"$schema says this is a {choice.kind} file, not a {kind} file; "
                f"check it with `batchai validate {choice.kind}`",
            )
        )
    return issues


def _invalid(path: str, kind: str, problems: list[ConfigProblem]) -> InvalidConfig:
    errors = sum(1 for problem in problems if problem.severity == "error")
    plural = "s" if errors != 1 else ""
    return InvalidConfig(f"{path} is not a valid {kind} file ({errors} error{plural}).", problems, file=path)


__all__ = ["CURRENT", "Document", "load_document", "normalize", "validate_file"]
