"""Bad input: every way a file can be unreadable gives one clean InvalidConfig with a position."""

from __future__ import annotations

import codecs
import json
import time

import pytest

from batchai_cli.config import load_document, validate_file
from batchai_cli.config.loader import MAX_DEPTH, index_positions, json_path, read_source
from batchai_cli.errors import ConfigProblem, InvalidConfig

VALID_JOB = {
    "properties": {
        "nodeCount": 1,
        "customToolkitSettings": {"commandLine": "echo hi"},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
    }
}


def write(tmp_path, content, name="job.json"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def only_problem(path) -> ConfigProblem:
    with pytest.raises(InvalidConfig) as caught:
        load_document(path, "job")
    assert caught.value.file == str(path)
    assert len(caught.value.problems) == 1
    return caught.value.problems[0]


def test_missing_file(tmp_path):
    problem = only_problem(tmp_path / "nope.json")
    assert problem == ConfigProblem("", "no such file")


def test_directory(tmp_path):
    assert only_problem(tmp_path).message == "is a directory, not a file"


@pytest.mark.parametrize("content", ["", "  \n\t\n"])
def test_empty_file(tmp_path, content):
    assert only_problem(write(tmp_path, content)).message == "the file is empty"


def test_non_utf8_bytes_give_line_and_column(tmp_path):
    problem = only_problem(write(tmp_path, b'{\n  "properties": {"x": "caf\xe9"}\n}\n'))
    assert (problem.line, problem.column) == (2, 27)
    assert problem.message == "not UTF-8: byte 0xe9 cannot start a character; save the file as UTF-8"


def test_utf16_is_refused_with_advice(tmp_path):
    path = write(tmp_path, codecs.BOM_UTF16_LE + json.dumps(VALID_JOB).encode("utf-16-le"))
    assert only_problem(path).message == "the file is UTF-16; save it as UTF-8"


def test_utf8_bom_is_accepted(tmp_path):
    path = write(tmp_path, codecs.BOM_UTF8 + json.dumps(VALID_JOB, indent=2).encode())
    document = load_document(path, "job")
    assert document.data == VALID_JOB
    assert document.warnings == []


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ('{\n  "a": 1,\n}', 3, 1, "expected a property name in double quotes (a trailing comma before it?)"),
        ('{\n  "a": [1, 2,]\n}', 2, 14, "expected a value (a trailing comma before it?)"),
        ('{\n  "a": 1\n  "b": 2\n}', 3, 3, "expected ',' between items (is a comma missing?)"),
        ("{'a': 1}", 1, 2, "expected a property name in double quotes (JSON strings use double quotes)"),
        ('{\n  // a comment\n  "a": 1\n}', 2, 3, "comments are not allowed in JSON"),
        (
            '{"a": "tab\there"}',
            1,
            11,
            "a control character (a tab or line break) inside a string; write it as \\t or \\n",
        ),
        ('{"a": "C:\\data"}', 1, 10, "invalid escape in a string; write a backslash as \\\\"),
        ('{"a": 1} {"b": 2}', 1, 10, "unexpected text after the end of the JSON document"),
        ('{"a" 1}', 1, 6, "expected ':' after the property name"),
        ('{"a": "open', 1, 7, "unterminated string"),
        ('{"a": NaN}', 1, 7, "NaN and Infinity are not JSON numbers"),
    ],
)
def test_malformed_json_says_where_and_what(tmp_path, text, line, column, message):
    problem = only_problem(write(tmp_path, text))
    assert (problem.line, problem.column, problem.message) == (line, column, message)


@pytest.mark.parametrize(
    ("text", "kind"),
    [("[1, 2]", "a list"), ('"job"', '"job"'), ("3", "3"), ("null", "null"), ("true", "true")],
)
def test_top_level_must_be_an_object(tmp_path, text, kind):
    problem = only_problem(write(tmp_path, "\n  " + text))
    assert problem.message == f'expected a JSON object ({{"properties": {{...}}}}) at the top level, got {kind}'
    assert (problem.line, problem.column) == (2, 3)


def test_a_50_mb_file_is_refused_fast(tmp_path):
    path = tmp_path / "big.json"
    with path.open("w") as handle:
        handle.write('{"properties": {"pad": "')
        handle.write("x" * (50 * 1024 * 1024))
        handle.write('"}}')
    started = time.monotonic()
    problem = only_problem(path)
    assert time.monotonic() - started < 1
    assert problem.message == "the file is 50.0 MB; a configuration file is at most 1 MB"


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 10_000, 100_000])
def test_deep_nesting_is_refused_fast(tmp_path, depth):
    path = write(tmp_path, '{"properties": ' + "[" * depth + "]" * depth + "}")
    started = time.monotonic()
    problem = only_problem(path)
    assert time.monotonic() - started < 2
    assert problem.message == f"nested more than {MAX_DEPTH} levels deep"
    assert (problem.line, problem.column) == (1, 16 + MAX_DEPTH - 1)


def test_deep_nesting_inside_strings_does_not_count(tmp_path):
    doc = dict(VALID_JOB)
    doc["properties"] = {**VALID_JOB["properties"], "jobPreparation": {"commandLine": "[" * 1000}}
    load_document(write(tmp_path, json.dumps(doc)), "job")


def test_huge_integer_is_a_clean_error(tmp_path):
    problem = only_problem(write(tmp_path, '{"properties": {"nodeCount": ' + "9" * 5000 + "}}"))
    assert problem.message.startswith("cannot parse: ")


def test_whole_floats_are_integers_and_fractions_are_errors(tmp_path):
    doc = json.loads(json.dumps(VALID_JOB))
    doc["properties"]["nodeCount"] = 2.0
    assert load_document(write(tmp_path, json.dumps(doc)), "job").properties["nodeCount"] == 2
    text = json.dumps(VALID_JOB).replace('"nodeCount": 1', '"nodeCount": 1.5')
    problems = validate_file(write(tmp_path, text), "job")
    assert [(p.json_path, p.message) for p in problems] == [
        ("$.properties.nodeCount", "expected a whole number, got 1.5")
    ]


def test_positions_of_keys_and_values():
    text = '{\n  "properties": {\n    "list": [1, {"b": true}],\n    "s": "x"\n  }\n}\n'
    positions = index_positions(text)
    assert positions.of_value(()) == (1, 1)
    assert positions.of_key(("properties",)) == (2, 3)
    assert positions.of_value(("properties",)) == (2, 17)
    assert positions.of_value(("properties", "list", 0)) == (3, 14)
    assert positions.of_value(("properties", "list", 1, "b")) == (3, 23)
    assert positions.of_key(("properties", "s")) == (4, 5)
    assert positions.of_value(("properties", "missing")) is None


def test_duplicate_keys_are_a_warning_and_the_last_wins(tmp_path):
    text = json.dumps(VALID_JOB, indent=2).replace('"nodeCount": 1,', '"nodeCount": 1,\n    "nodeCount": 3,')
    document = load_document(write(tmp_path, text), "job")
    assert document.properties["nodeCount"] == 3
    assert [(w.json_path, w.line, w.message) for w in document.warnings] == [
        ("$.properties.nodeCount", 4, "duplicate key; the last one wins (as in az)")
    ]


def test_json_path_quotes_keys_that_are_not_names():
    assert json_path(()) == "$"
    assert json_path(("properties", "mountVolumes", "azureFileShares", 0, "azureFileUrl")) == (
        "$.properties.mountVolumes.azureFileShares[0].azureFileUrl"
    )
    assert json_path(("$schema",)) == "$['$schema']"
    assert json_path(("it's",)) == "$['it\\'s']"


def test_read_source_keeps_the_text_positions(tmp_path):
    source = read_source(write(tmp_path, '\n\n{"properties": {}}'))
    assert source.positions.of_value(("properties",)) == (3, 16)
