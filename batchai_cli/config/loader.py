"""Read a config file into JSON data plus the line and column of every key and value.

Every way a file can be unreadable (missing, a directory, too big, not UTF-8, empty, malformed,
nested too deep, not an object) ends in one InvalidConfig that says where and what, never in a
traceback. The standard json module parses (fast, exact); a small tokenizer then records positions,
which the json module does not expose.
"""

from __future__ import annotations

import bisect
import codecs
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchai_cli.errors import ConfigProblem, InvalidConfig

MAX_BYTES = 1024 * 1024  # a job.json is a few kB; validating 1 MB of it already takes seconds
MAX_DEPTH = 64  # real files nest about 8 deep; the json module would recurse on thousands

JsonPath = tuple  # of str keys and int indices

_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+', re.S)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(path: JsonPath) -> str:
    """`$.properties.mountVolumes.azureFileShares[0]` (bracket-quoted where a key is not a name)."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}"
        else:
            out += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


@dataclass
class Positions:
    """Offsets of values and keys in the text, by JSON path, turned into 1-based (line, column)."""

    text: str
    values: dict[JsonPath, int] = field(default_factory=dict)
    keys: dict[JsonPath, int] = field(default_factory=dict)
    duplicates: list[JsonPath] = field(default_factory=list)
    _newlines: list[int] | None = None

    def line_column(self, offset: int) -> tuple[int, int]:
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self.text)]
        line = bisect.bisect_left(self._newlines, offset)
        start = self._newlines[line - 1] + 1 if line else 0
        return line + 1, offset - start + 1

    def of_value(self, path: JsonPath) -> tuple[int, int] | None:
        offset = self.values.get(tuple(path))
        return None if offset is None else self.line_column(offset)

    def of_key(self, path: JsonPath) -> tuple[int, int] | None:
        offset = self.keys.get(tuple(path))
        return self.of_value(path) if offset is None else self.line_column(offset)


def index_positions(text: str) -> Positions:
    """Walk the tokens of an already-parsed JSON text; iterative, so any depth is safe."""
    positions = Positions(text)
    stack: list[list] = []  # [is_object, path, next index or current key, keys seen]
    expect_key = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        first = token[0]
        if first == ",":
            expect_key = bool(stack) and stack[-1][0]
            continue
        if first == ":":
            continue
        if first in "}]":
            stack.pop()
            expect_key = False
            continue
        if expect_key:
            frame = stack[-1]
            key = json.loads(token) if "\\" in token else token[1:-1]
            frame[2] = key
            path = (*frame[1], key)
            if key in frame[3]:
                positions.duplicates.append(path)
            frame[3].add(key)
            positions.keys[path] = match.start()
            expect_key = False
            continue
        if not stack:
            path = ()
        elif stack[-1][0]:
            path = (*stack[-1][1], stack[-1][2])
        else:
            path = (*stack[-1][1], stack[-1][2])
            stack[-1][2] += 1
        positions.values[path] = match.start()
        if first == "{":
            stack.append([True, path, None, set()])
            expect_key = True
        elif first == "[":
            stack.append([False, path, 0, set()])
    return positions


@dataclass
class Source:
    path: str
    data: dict
    positions: Positions


def fail(
    path: str, summary: str, message: str, line: int | None = None, column: int | None = None, hint: str | None = None
) -> InvalidConfig:
    return InvalidConfig(summary, [ConfigProblem("", message, line, column)], file=path, hint=hint)


def read_source(path: str | os.PathLike) -> Source:
    """Read and parse a config file; raise InvalidConfig (one problem, with a position) when it can't be."""
    name = str(path)
    text = _read_text(Path(path), name)
    positions = Positions(text)
    _check_depth(text, positions, name)
    try:
        data = json.loads(text, parse_float=_parse_float, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _syntax_error(exc, text, name) from None
    except _NonStandardNumber:
        line, column = _find_constant(text, positions)
        raise fail(name, f"{name} is not valid JSON.", "NaN and Infinity are not JSON numbers", line, column) from None
    except (ValueError, RecursionError) as exc:
        raise fail(name, f"{name} is not valid JSON.", f"cannot parse: {exc}") from None
    if not isinstance(data, dict):
        line, column = positions.line_column(len(text) - len(text.lstrip()))
        raise fail(
            name,
            f"{name} is not a configuration object.",
            f'expected a JSON object ({{"properties": {{...}}}}) at the top level, got {describe(data)}',
            line,
            column,
        )
    return Source(name, data, index_positions(text))


def _read_text(path: Path, name: str) -> str:
    summary = f"Cannot read {name}."
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise fail(name, summary, "is a directory, not a file")
        if info.st_size > MAX_BYTES:
            raise fail(
                name,
                summary,
                f"the file is {info.st_size / 1024 / 1024:.1f} MB; a configuration file is "
                f"at most {MAX_BYTES // 1024 // 1024} MB",
            )
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)  # bounded: a FIFO or device reports no size
    except FileNotFoundError:
        raise fail(name, summary, "no such file") from None
    except PermissionError:
        raise fail(name, summary, "permission denied") from None
    except OSError as exc:
        raise fail(name, summary, exc.strerror or str(exc)) from None
    if len(raw) > MAX_BYTES:
        raise fail(name, summary, f"more than {MAX_BYTES // 1024 // 1024} MB; a configuration file is smaller")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]  # Windows editors write one; json.loads would reject it
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise fail(name, summary, "the file is UTF-16; save it as UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        raise fail(
            name,
            summary,
            f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot start a character; save the file as UTF-8",
            line,
            column,
        ) from None
    if not text.strip():
        raise fail(name, summary, "the file is empty")
    return text


def _check_depth(text: str, positions: Positions, name: str) -> None:
    depth = 0
    for match in _STRUCTURE.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line, column = positions.line_column(match.start())
                raise fail(
                    name,
                    f"{name} is not a configuration file.",
                    f"nested more than {MAX_DEPTH} levels deep",
                    line,
                    column,
                )
        elif char in "]}":
            depth -= 1


_SYNTAX_MESSAGES = {
    "Expecting value": "expected a value",
    "Expecting property name enclosed in double quotes": "expected a property name in double quotes",
    "Expecting ',' delimiter": "expected ',' between items (is a comma missing?)",
    "Expecting ':' delimiter": "expected ':' after the property name",
    "Unterminated string starting at": "unterminated string",
    "Invalid control character at": "a control character (a tab or line break) inside a string; write it as \\t or \\n",
    "Invalid \\escape": "invalid escape in a string; write a backslash as \\\\",
    "Invalid \\uXXXX escape": "invalid \\u escape in a string",
    "Extra data": "unexpected text after the end of the JSON document",
}


def _syntax_error(exc: json.JSONDecodeError, text: str, name: str) -> InvalidConfig:
    message = _SYNTAX_MESSAGES.get(exc.msg, exc.msg)
    before = text[: exc.pos].rstrip()
    rest = text[exc.pos : exc.pos + 2]
    if rest in ("//", "/*"):
        message = "comments are not allowed in JSON"
    elif before.endswith(",") and exc.msg in ("Expecting value", "Expecting property name enclosed in double quotes"):
        message += " (a trailing comma before it?)"
    elif exc.msg.startswith("Expecting") and rest[:1] == "'":
        message += " (JSON strings use double quotes)"
    return fail(name, f"{name} is not valid JSON.", message, exc.lineno, exc.colno)


class _NonStandardNumber(ValueError):
    pass


def _reject_constant(_name: str):
    raise _NonStandardNumber


def _find_constant(text: str, positions: Positions) -> tuple[int | None, int | None]:
    for match in _TOKEN.finditer(text):
        if match.group() in ("NaN", "Infinity", "-Infinity"):
            return positions.line_column(match.start())
    return None, None


def _parse_float(text: str) -> Any:
    # Counts written as 2.0 (or 2e0) are whole numbers; keeping them int keeps the request exact.
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2**63 else value


def describe(value: Any) -> str:
    """A JSON value as a message shows it: strings quoted (and shortened), containers by kind."""
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:56] + '..."'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return str(value)
