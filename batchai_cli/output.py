"""Render a command's result as az does: json, jsonc, table, tsv, yaml, yamlc or none, after --query.

Knows no resource type. Two az conventions are applied here because they hold for every resource:
every dict with an ARM `id` gets a `resourceGroup` key (nested ones too), and JSON keys are sorted.
Table columns for known resources come from a per-command transformer (cli/tables.py); without one,
or when --query is used (as in az), the table shows a result's scalar fields.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

FORMATS = ("json", "jsonc", "table", "tsv", "yaml", "yamlc", "none")
TableTransformer = Callable[[Any], list[dict]]


def add_resource_groups(data: Any) -> Any:
    """A copy of data where each dict with an ARM id also has `resourceGroup`, as az prints it."""
    from batchai_cli.ids import resource_group_of

    if isinstance(data, list):
        return [add_resource_groups(item) for item in data]
    if isinstance(data, dict):
        result = {key: add_resource_groups(value) for key, value in data.items()}
        ident = data.get("id")
        if isinstance(ident, str) and "resourceGroup" not in result:
            group = resource_group_of(ident)
            if group:
                result["resourceGroup"] = group
        return result
    return data


def apply_query(data: Any, query: str) -> Any:
    """Evaluate a JMESPath expression; a bad expression is a usage error naming the problem."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    from batchai_cli.errors import UsageError

    try:
        return jmespath.search(query, data, jmespath.Options(dict_cls=dict))
    except JMESPathError as exc:
        message = str(exc).replace("\n", " ")
        raise UsageError(f"argument --query: invalid JMESPath query '{query}': {message}") from None
    except RecursionError:
        shown = query if len(query) <= 80 else query[:77] + "..."
        raise UsageError(
            f"argument --query: the JMESPath query '{shown}' nests too deeply to evaluate.",
            hint="Use fewer nested brackets or parentheses.",
        ) from None


def render(
    data: Any,
    fmt: str = "json",
    *,
    query: str | None = None,
    table: TableTransformer | None = None,
    color: bool | None = None,
) -> str:
    """The text to print on stdout for a command's result ('' when there is nothing to print)."""
    if data is None and not query:
        return ""
    data = add_resource_groups(data)
    if query:
        data = apply_query(data, query)
        table = None  # az drops the table transformer when --query reshapes the result
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    if fmt == "none":
        return ""
    if fmt in ("json", "jsonc"):
        import json

        text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        return (colorize_json(text) if fmt == "jsonc" and color else text) + "\n"
    if fmt in ("yaml", "yamlc"):
        import yaml

        return yaml.safe_dump(data, default_flow_style=False, allow_unicode=True, sort_keys=True)
    if fmt == "tsv":
        return format_tsv(data)
    if fmt == "table":
        rows = table(data) if table else auto_table(data)
        return format_table(rows)
    raise ValueError(f"unknown output format {fmt!r}")


# -- table ----------------------------------------------------------------------------------------


# az's table leaves these out of automatic columns: long, and the same on every row.
_SKIP_KEYS = ("id", "type", "etag")


def auto_table(data: Any) -> list[dict]:
    """Rows of scalar fields, az's fallback when a command has no table format of its own."""
    items = data if isinstance(data, list) else [data]
    rows = []
    for item in items:
        if isinstance(item, dict):
            rows.append(
                {
                    _column(key): value
                    for key, value in sorted(item.items())
                    if key not in _SKIP_KEYS and value is not None and not isinstance(value, (dict, list))
                }
            )
        elif item is not None:
            rows.append({"Result": item})
    return rows


def _column(key: str) -> str:
    return key[:1].upper() + key[1:]


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def format_table(rows: list[dict]) -> str:
    """az's table: headers, a dashed rule, left-aligned text and right-aligned numbers."""
    if not rows:
        return ""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    numeric = {
        col: all(
            isinstance(row.get(col), (int, float)) and not isinstance(row.get(col), bool)
            for row in rows
            if row.get(col) is not None
        )
        and any(row.get(col) is not None for row in rows)
        for col in columns
    }
    cells = [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(col), *(len(line[i]) for line in cells)) for i, col in enumerate(columns)]

    def line(values: list[str]) -> str:
        parts = [
            value.rjust(width) if numeric[col] else value.ljust(width)
            for value, width, col in zip(values, widths, columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out = [line(columns), "  ".join("-" * width for width in widths)]
    out.extend(line(values) for values in cells)
    return "\n".join(out) + "\n"


# -- tsv ------------------------------------------------------------------------------------------


def format_tsv(data: Any) -> str:
    """az's tsv: one line per item, values of a dict in key order, nested objects left out."""
    items = data if isinstance(data, list) else [data]
    lines = []
    for item in items:
        if isinstance(item, dict):
            values = [value for _, value in sorted(item.items()) if not isinstance(value, (dict, list))]
            lines.append("\t".join(_tsv_value(value) for value in values))
        elif isinstance(item, list):
            lines.append("\t".join(_tsv_value(value) for value in item if not isinstance(value, (dict, list))))
        elif item is not None:
            lines.append(_tsv_value(item))
    return "".join(line + "\n" for line in lines)


def _tsv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- jsonc ----------------------------------------------------------------------------------------

_KEY, _STRING, _NUMBER, _LITERAL, _RESET = "\x1b[94m", "\x1b[32m", "\x1b[36m", "\x1b[95m", "\x1b[0m"


def colorize_json(text: str) -> str:
    """Color JSON text produced by json.dumps: keys, strings, numbers and literals."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            token = text[i : j + 1]
            k = j + 1
            while k < n and text[k] == " ":
                k += 1
            color = _KEY if k < n and text[k] == ":" else _STRING
            out.append(f"{color}{token}{_RESET}")
            i = j + 1
        elif ch in "-0123456789":
            j = i
            while j < n and text[j] in "-+.eE0123456789":
                j += 1
            out.append(f"{_NUMBER}{text[i:j]}{_RESET}")
            i = j
        elif text.startswith(("true", "false", "null"), i):
            word = next(w for w in ("true", "false", "null") if text.startswith(w, i))
            out.append(f"{_LITERAL}{word}{_RESET}")
            i += len(word)
        else:
            out.append(ch)
            i += 1
    return "".join(out)
