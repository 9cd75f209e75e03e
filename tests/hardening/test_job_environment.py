"""Item 9: the credentials the CLI holds never reach the job unless its environmentVariables or
secrets name them."""

from __future__ import annotations

from batchai_cli.agent import environment
from tests.jobs.conftest import custom

KEY = "S2V5VGhhdE11c3ROb3RMZWFrCg=="
CONNECTION = f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:1/acct;"


def test_inherited_drops_credentials_batchai_variables_and_bookkeeping():
    given = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "AZURE_STORAGE_CONNECTION_STRING": CONNECTION,
        "AZURE_BATCHAI_STORAGE_KEY": KEY,
        "AZURE_BATCHAI_STORAGE_ACCOUNT": "acct",
        "AZURE_STORAGE_KEY": KEY,
        "AZURE_STORAGE_SAS_TOKEN": "sv=2020&sig=abc",
        "AZURE_CLIENT_SECRET": "x",
        "azure_storage_key": KEY,
        "AZ_BATCHAI_TASK_INDEX": "7",
        "BATCHAI_JOB_UMASK": "022",
        "BATCHAI_HOME": "/h",
    }
    assert environment.inherited(given) == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "AZURE_BATCHAI_STORAGE_ACCOUNT": "acct",
        "BATCHAI_HOME": "/h",
    }


def test_a_job_that_prints_env_prints_no_key(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_BATCHAI_STORAGE_KEY", KEY)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", CONNECTION)
    monkeypatch.setenv("AZURE_STORAGE_KEY", KEY)
    out = tmp_path / "out"
    created = lab.submit("env", custom("env", out))
    assert created.code == 0, created.err
    assert lab.wait("env").code == 0
    stdout = (lab.stdouterr("env", out) / "stdout.txt").read_text()
    assert "PATH=" in stdout
    assert KEY not in stdout
    assert "AZURE_STORAGE_CONNECTION_STRING" not in stdout
    assert "BATCHAI_JOB_UMASK" not in stdout


def test_a_job_that_names_a_credential_gets_it(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_BATCHAI_STORAGE_KEY", KEY)
    out = tmp_path / "out"
    job = custom(
        'echo "key=$AZURE_STORAGE_KEY conn=${AZURE_STORAGE_CONNECTION_STRING:-unset}"',
        out,
        secrets=[{"name": "AZURE_STORAGE_KEY", "value": "the-jobs-own"}],
    )
    assert lab.submit("named", job).code == 0
    assert lab.wait("named").code == 0
    assert (lab.stdouterr("named", out) / "stdout.txt").read_text() == "key=the-jobs-own conn=unset\n"
