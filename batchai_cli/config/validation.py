"""Validate a document against one of the schemas, as Issues a person can act on.

Quoted numbers ("2" where a count belongs) are converted, with a warning, because az's deserializer
converted them and files in the wild rely on it; 1.5 stays an error (az silently truncated it).
"""

from __future__ import annotations

import copy

from batchai_cli.config import quickcheck
from batchai_cli.config.issues import Issue
from batchai_cli.config.messages import Context, translate
from batchai_cli.config.schemas import CURRENT, load_schema, schema_id, validator


def context(version: str, kind: str) -> Context:
    current = load_schema(schema_id(CURRENT, kind)) if version != CURRENT else None
    return Context(load_schema(schema_id(version, kind)), version, current)


def check_schema(data: dict, version: str, kind: str, level: str = "file") -> tuple[dict, list[Issue]]:
    """(data with quoted numbers converted, issues). Never raises for any JSON input."""
    url = schema_id(version, kind, level)
    if quickcheck.passes(url, data):  # the common case, without importing jsonschema
        return data, []
    check = validator(url)
    ctx = context(version, kind)
    coercions: dict = {}
    issues = [issue for error in check.iter_errors(data) for issue in translate(error, ctx, coercions)]
    if not coercions:
        return data, issues
    data = copy.deepcopy(data)
    for path, number in coercions.items():
        _set(data, path, number)
    # Check again: a converted count may now break a minimum, and its type error is gone.
    kept = [issue for issue in issues if issue.path in coercions and issue.severity == "warning"]
    again = [issue for error in check.iter_errors(data) for issue in translate(error, ctx, {})]
    return data, kept + again


def _set(data, path: tuple, value) -> None:
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
