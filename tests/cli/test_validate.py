"""`batchai validate`: whole outputs (stderr for people, -o json for CI steps) and exit codes."""

from __future__ import annotations

import json

import pytest

GOOD_JOB = {
    "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/job.json",
    "properties": {
        "nodeCount": 1,
        "customToolkitSettings": {"commandLine": "echo hi"},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
    },
}
BAD_JOB = """{
  "properties": {
    "nodeCount": "two",
    "customToolkitSettings": {"commandLine": "echo hi"},
    "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
    "nodCount": 1
  }
}
"""


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.json").write_text(json.dumps(GOOD_JOB, indent=2))
    (tmp_path / "job.json").write_text(BAD_JOB)
    (tmp_path / "broken.json").write_text('{\n  "properties": {\n    "nodeCount": 1,\n  }\n}\n')
    return tmp_path


def test_a_valid_file_is_one_line_on_stderr_and_exits_0(batchai, files):
    result = batchai("validate", "job", "good.json")
    assert (result.code, result.out, result.err) == (0, "", "1 job file valid.\n")
    quiet = batchai("validate", "job", "good.json", "--only-show-errors")
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")


def test_problems_are_printed_like_compiler_messages(batchai, files):
    result = batchai("validate", "job", "job.json", "broken.json", "good.json", "missing.json")
    assert result.code == 1
    assert result.out == ""
    assert result.err == (
        'job.json:3:18: error: $.properties.nodeCount: expected an integer, got "two"\n'
        '        "nodeCount": "two",\n'
        "                     ^\n"
        'job.json:6:5: warning: $.properties.nodCount: unknown key "nodCount", ignored (as az did); '
        'did you mean "nodeCount"?\n'
        "broken.json:4:3: error: expected a property name in double quotes (a trailing comma before it?)\n"
        "      }\n"
        "      ^\n"
        "missing.json: error: no such file\n"
        "ERROR: 3 of 4 job files are not valid (3 errors).\n"
    )


def test_json_output_is_a_list_for_ci_annotations(batchai, files):
    result = batchai("validate", "job", "job.json", "good.json", "-o", "json")
    assert result.code == 1
    assert result.json() == [
        {
            "file": "job.json",
            "line": 3,
            "column": 18,
            "path": "$.properties.nodeCount",
            "severity": "error",
            "message": 'expected an integer, got "two"',
        },
        {
            "file": "job.json",
            "line": 6,
            "column": 5,
            "path": "$.properties.nodCount",
            "severity": "warning",
            "message": 'unknown key "nodCount", ignored (as az did); did you mean "nodeCount"?',
        },
    ]
    assert result.err.endswith("ERROR: 1 of 2 job files is not valid (1 error).\n")
    clean = batchai("validate", "job", "good.json", "-o", "json")
    assert (clean.code, clean.out) == (0, "[]\n")


def test_query_and_tsv_work_on_the_list(batchai, files):
    result = batchai("validate", "job", "job.json", "-o", "tsv", "--query", "[?severity=='error'].[line, column, path]")
    assert (result.code, result.out) == (1, "3\t18\t$.properties.nodeCount\n")


def test_strict_turns_warnings_into_errors(batchai, files, tmp_path):
    (tmp_path / "warn.json").write_text(json.dumps({"location": "eastus", **GOOD_JOB}, indent=2))
    assert batchai("validate", "job", "warn.json").code == 0
    result = batchai("validate", "job", "--strict", "warn.json")
    assert result.code == 1
    assert result.err.startswith('warn.json:2:3: error: $.location: unknown key "location"')


def test_only_show_errors_hides_warnings(batchai, files):
    result = batchai("validate", "job", "job.json", "--only-show-errors")
    assert "warning" not in result.err
    assert result.err.startswith("job.json:3:18: error:")


def test_cluster_and_file_server(batchai, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cluster.json").write_text(
        json.dumps(
            {
                "properties": {
                    "scaleSettings": {
                        "manual": {"targetNodeCount": 1},
                        "autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 1},
                    }
                }
            }
        )
    )
    result = batchai("validate", "cluster", "cluster.json")
    assert result.code == 1
    assert result.err.startswith(
        "cluster.json:1:34: error: $.properties.scaleSettings: give either manual or autoScale, not both\n"
    )
    (tmp_path / "nfs.json").write_text(json.dumps({"properties": {"dataDisks": {"diskCount": 0}}}))
    result = batchai("validate", "file-server", "nfs.json")
    assert result.code == 1
    assert "error: $.properties.dataDisks.diskCount: expected at least 1, got 0" in result.err


def test_a_file_of_another_kind(batchai, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    schema = "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/cluster.json"
    (tmp_path / "c.json").write_text(json.dumps({"$schema": schema, "properties": {}}))
    result = batchai("validate", "job", "c.json")
    assert result.code == 1
    assert result.err.startswith(
        "c.json:1:13: error: $['$schema']: $schema says this is a cluster file, not a job file; check it with "
        "`batchai validate cluster`\n"
    )


def test_help_lists_the_three_kinds(batchai):
    result = batchai("validate", "--help")
    assert result.code == 0
    for line in (
        "  cluster      Check cluster files",
        "  file-server  Check file server files",
        "  job          Check job files",
    ):
        assert line in result.out
    assert (
        "batchai validate job --strict -o json configs/*.json > problems.json"
        in batchai("validate", "job", "--help").out
    )


def test_files_are_required(batchai):
    result = batchai("validate", "job")
    assert result.code == 2
    assert "FILE" in result.err
