"""What a new user hit on the first day (issue 12), as whole outputs of the commands they typed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parent.parent / "data" / "corpus" / "batchai-recipes"
STORAGE_VARIABLES = (
    "AZURE_BATCHAI_STORAGE_ACCOUNT",
    "AZURE_BATCHAI_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
)


@pytest.fixture
def no_storage_settings(monkeypatch):
    for name in STORAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def workspace(batchai):
    assert batchai("workspace", "create", "-g", "rg", "-n", "ws", "-o", "none").code == 0
    assert batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "exp", "-o", "none").code == 0
    return batchai


def create_job(batchai, recipe: str, *extra: str):
    cluster = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/clusters/c"
    return batchai(
        "job",
        "create",
        "-g",
        "rg",
        "-w",
        "ws",
        "-e",
        "exp",
        "-n",
        "j",
        "-c",
        cluster,
        "-f",
        str(RECIPES / recipe),
        *extra,
    )


def test_a_missing_storage_account_is_said_once_with_what_works_here(workspace, no_storage_settings):
    result = create_job(workspace, "Horovod__Horovod-Tensorflow__job.json")
    assert result.code == 1
    path = RECIPES / "Horovod__Horovod-Tensorflow__job.json"
    assert result.out == ""
    assert result.err == (
        f"{path}:11:17: error: $.properties.mountVolumes.azureFileShares[0]: The storage account name "
        "(<AZURE_BATCHAI_STORAGE_ACCOUNT>) is not configured; 2 mounts need it: azureFileShares[0], "
        "azureFileShares[1].\n"
        "                    {\n"
        "                    ^\n"
        "ERROR: Please configure Azure Storage account name via AZURE_BATCHAI_STORAGE_ACCOUNT. batchai has no az "
        "configuration file: give --storage-account-name NAME --storage-account-key KEY, set "
        "AZURE_BATCHAI_STORAGE_ACCOUNT and AZURE_BATCHAI_STORAGE_KEY, or set AZURE_STORAGE_CONNECTION_STRING (its "
        "AccountName and AccountKey are used when nothing more specific is given).\n"
    )


def test_a_missing_key_is_said_once_for_every_mount_that_needs_it(workspace, no_storage_settings):
    result = create_job(workspace, "TensorFlow__TensorFlow-GPU-Distributed__job.json", "--storage-account-name", "acc")
    assert result.code == 1
    assert result.err.count("error:") == 1
    assert result.err.count("ERROR: Please configure Azure Storage account key via AZURE_BATCHAI_STORAGE_KEY.") == 1
    assert "az configuration file:" in result.err and "storage_key value" not in result.err
    assert "3 mounts need it: azureFileShares[0], azureFileShares[1], azureBlobFileSystems[0]." in result.err


def test_no_credentials_at_all_fails_at_once_naming_the_ways_to_give_them(batchai, no_storage_settings, tmp_path):
    import time

    (tmp_path / "a.txt").write_text("a")
    started = time.monotonic()
    result = batchai(
        "storage", "blob", "upload-batch", "-s", str(tmp_path), "-d", "data", "--account-name", "devstoreaccount1"
    )
    assert time.monotonic() - started < 2  # no request was sent, so none was retried
    assert result.code == 2
    assert result.out == ""
    assert result.err == (
        "ERROR: No credentials for storage account 'devstoreaccount1'. Give one of: --account-key (or "
        "AZURE_STORAGE_KEY) with --account-name, --sas-token (or AZURE_STORAGE_SAS_TOKEN, or a SAS in the URL), "
        "--connection-string (or AZURE_STORAGE_CONNECTION_STRING), or --auth-mode login. For a public container, "
        "--anonymous.\n"
    )


@pytest.mark.integration
def test_anonymous_access_asked_for_sends_unsigned_requests(batchai, no_storage_settings, azurite, tmp_path):
    """A connection string with an endpoint and no key: refused at once, unless --anonymous, when the
    unsigned request goes to Azurite and its answer is what the user sees."""
    keyless = f"DefaultEndpointsProtocol=http;BlobEndpoint={azurite.blob_endpoint};"
    args = ("storage", "blob", "download-batch", "-s", "nosuchcontainer", "-d", str(tmp_path))
    refused = batchai(*args, "--connection-string", keyless)
    assert (refused.code, refused.err.split(".")[0]) == (
        2,
        "ERROR: No credentials for storage account 'devstoreaccount1'",
    )
    sent = batchai(*args, "--connection-string", keyless, "--anonymous")
    assert sent.code == 1
    assert sent.err.startswith(
        "ERROR: The storage account 'devstoreaccount1' needs credentials (AuthorizationFailure)."
    )


def test_not_found_names_the_first_missing_level(batchai):
    """After `make demo`, a shell without the demo's BATCHAI_HOME: the workspace is what is missing."""
    args = ("-g", "demo-rg", "-w", "demo-ws", "-e", "demo-exp")
    for command in (
        ("job", "show", *args, "-n", "train"),
        ("job", "list", *args),
        ("experiment", "show", *args[:4], "-n", "demo-exp"),
    ):
        result = batchai(*command)
        assert result.code == 3, command
        assert result.err == (
            'ERROR: The workspace "demo-ws" was not found in resource group "demo-rg". '
            "See what exists with 'batchai workspace list -g demo-rg'.\n"
        ), command
    assert batchai("workspace", "create", "-g", "demo-rg", "-n", "demo-ws", "-o", "none").code == 0
    result = batchai("job", "show", *args, "-n", "train")
    assert result.err.startswith('ERROR: The experiment "demo-exp" was not found in workspace "demo-ws"')


def test_validate_warns_about_directory_variables_no_directory_defines(batchai, tmp_path):
    job = {
        "properties": {
            "nodeCount": 1,
            "stdOutErrPathPrefix": "/tmp/out",
            "outputDirectories": [{"id": "MODEL", "pathPrefix": "/tmp/out"}],
            "customToolkitSettings": {
                "commandLine": "python train.py --data $AZ_BATCHAI_INPUT_DATASET --out ${AZ_BATCHAI_OUTPUT_MODEL} "
                "--logs $AZ_BATCHAI_OUTPUT_LOGS"
            },
        }
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job, indent=2))
    result = batchai("validate", "job", str(path))
    assert result.code == 0
    where = f"{path}:12:22: warning: $.properties.customToolkitSettings.commandLine"
    assert result.err == (
        f'{where}: $AZ_BATCHAI_INPUT_DATASET is used, but no inputDirectories entry has the id "DATASET" (ids: '
        "none), so it is unset on the node\n"
        f'{where}: $AZ_BATCHAI_OUTPUT_LOGS is used, but no outputDirectories entry has the id "LOGS" (ids: MODEL), '
        "so it is unset on the node\n"
        "1 job file valid (2 warnings).\n"
    )


def test_the_upload_bar_and_the_summary_speak_one_unit():
    """A 300 MiB upload: the bar says 300.0/300.0 MiB, as the summary's 300.0 MiB (not 314.6 MB)."""
    import io

    from rich.console import Console

    from batchai_cli.cli.storage import Reporter, _size

    reporter = Reporter("Uploaded", show_bar=True, quiet=False)
    reporter.start(1, 300 * 1024 * 1024)
    try:
        reporter.advance(300 * 1024 * 1024)
        task = reporter.progress.tasks[0]
        console = Console(file=io.StringIO(), width=200)
        rendered = " ".join(console.render_str(str(column.render(task))).plain for column in reporter.progress.columns)
    finally:
        reporter.progress.stop()
    assert "300.0/300.0 MiB" in rendered
    assert _size(300 * 1024 * 1024) == "300.0 MiB"


def test_a_missing_option_says_how_to_set_a_default_in_one_sentence(batchai):
    result = batchai("experiment", "list", "-g", "rg")
    assert result.code == 2
    assert result.err == (
        "ERROR: the following arguments are required: --workspace/-w (or set a default: batchai configure "
        "--defaults workspace=<name>).\n"
    )
