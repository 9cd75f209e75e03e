"""Item 11: inputs that gave "Unexpected error" (a raw exception) or failed only at run time now get
a message and a non-zero exit, in validate and job create alike."""

from __future__ import annotations

import json

import pytest

from tests.jobs.conftest import custom

CREATE = ("job", "create", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "j", "-c", "c", "-f")


def _both(lab, path):
    return lab.batchai("validate", "job", str(path)), lab.batchai(*CREATE, str(path))


def test_a_wall_clock_time_too_long_to_hold(lab, tmp_path):
    path = lab.job_file(custom("echo", tmp_path, constraints={"maxWallClockTime": "99999999999.00:00:00"}))
    for result in _both(lab, path):
        assert result.code == 1
        assert "Unexpected error" not in result.err
        assert (
            '$.properties.constraints.maxWallClockTime: "99999999999.00:00:00" is longer than batchai can hold '
            "(at most 999999999 days)"
        ) in result.err


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("commandLine", "echo a\x00b", "has a NUL character (\\u0000): no command line, variable or path can hold it"),
        ("commandLine", "echo \ud800", "contains a lone UTF-16 surrogate, which is not text; write the character"),
    ],
)
def test_nul_bytes_and_lone_surrogates_are_refused_before_the_job_runs(lab, tmp_path, field, value, message):
    job = custom("echo", tmp_path, environmentVariables=[{"name": "V", "value": value}])
    job["customToolkitSettings"][field] = value
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"properties": job}))  # json escapes them: \u0000, \ud800
    for result in _both(lab, path):
        assert result.code == 1
        assert f"$.properties.customToolkitSettings.commandLine: {message}" in result.err
        assert f"$.properties.environmentVariables[0].value: {message}" in result.err
    assert lab.batchai("job", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-o", "tsv").out == ""


@pytest.mark.parametrize("name", ["../..", "a" * 70, "a.b"])
def test_a_storage_account_name_that_is_no_name(batchai, tmp_path, name):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a")
    result = batchai(
        "storage", "blob", "upload-batch", "-s", str(tmp_path / "src"), "-d", "c",
        "--account-name", name, "--account-key", "a2V5",
    )  # fmt: skip
    assert result.code == 2
    assert result.err == (
        f"ERROR: '{name}' is not a storage account name. "
        "Storage account names are 3 to 24 lowercase letters and digits.\n"
    )


def test_a_stream_offset_beyond_any_file(lab):
    result = lab.batchai(
        "job", "file", "stream", "-g", "rg", "-w", "ws", "-e", "exp", "-j", "j", "-f", "stdout.txt",
        "--offset", "99999999999999999999",
    )  # fmt: skip
    assert result.code == 2
    assert "Unexpected error" not in result.err
    assert "--offset" in result.err and "99999999999999999999 is not in the range" in result.err


def test_a_query_nested_too_deeply(batchai):
    result = batchai("workspace", "list", "--query", "[" * 5000)
    assert result.code == 2
    assert result.err.startswith("ERROR: argument --query: the JMESPath query '[[[")
    assert "nests too deeply to evaluate. Use fewer nested brackets or parentheses.\n" in result.err


def test_validate_refuses_the_account_name_job_create_refuses(lab, tmp_path):
    share = {
        "accountName": "a",
        "azureFileUrl": "https://a.file.core.windows.net/s",
        "credentials": {"accountKey": "a2V5"},
        "relativeMountPath": "afs",
    }
    path = lab.job_file(custom("echo", tmp_path, mountVolumes={"azureFileShares": [share]}))
    message = (
        "$.properties.mountVolumes.azureFileShares[0].accountName: expected a storage account name: 3 to 24 "
        'lowercase letters and digits (a placeholder left to fill in?), got "a"'
    )
    for result in _both(lab, path):
        assert result.code == 1
        assert message in result.err
