"""build_job_request: az's job create patching (az-batchai-behaviour.md 3.1-3.3, 3.9), and where batchai differs."""

from __future__ import annotations

import copy
import json

import pytest

from batchai_cli.config import build_job_request
from batchai_cli.config.mounts import MSG_CONFIGURE_ACCOUNT, MSG_CONFIGURE_KEY
from batchai_cli.errors import BatchAIError, InvalidConfig

CLUSTER = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/clusters/gpu"
NFS = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/fileServers/nfs1"
ENV = {"AZURE_BATCHAI_STORAGE_ACCOUNT": "mystorage", "AZURE_BATCHAI_STORAGE_KEY": "c2VjcmV0"}
RECIPE = {
    "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/job.json",
    "properties": {
        "nodeCount": 2,
        "customToolkitSettings": {"commandLine": "python $AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/train.py"},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
        "mountVolumes": {
            "azureFileShares": [
                {
                    "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/logs",
                    "relativeMountPath": "logs",
                },
            ],
            "azureBlobFileSystems": [
                {
                    "accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
                    "containerName": "data",
                    "relativeMountPath": "data",
                },
            ],
        },
    },
}


def write(tmp_path, doc, name="job.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def line_of(doc, needle: str) -> int:
    """The line of the first occurrence of needle in the file write() makes of doc."""
    lines = json.dumps(doc, indent=2).splitlines()
    return next(number for number, text in enumerate(lines, 1) if needle in text)


def build(tmp_path, doc=RECIPE, **options):
    options.setdefault("cluster_id", CLUSTER)
    options.setdefault("env", ENV)
    return build_job_request(write(tmp_path, doc), **options)


def shares(request):
    return request["properties"]["mountVolumes"].get("azureFileShares", [])


def test_a_recipe_becomes_the_complete_request(tmp_path):
    request, warnings = build(tmp_path)
    assert warnings == []
    assert request == {
        "properties": {
            "nodeCount": 2,
            "customToolkitSettings": {"commandLine": "python $AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/train.py"},
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
            "mountVolumes": {
                "azureFileShares": [
                    {
                        "azureFileUrl": "https://mystorage.file.core.windows.net/logs",
                        "relativeMountPath": "logs",
                        "accountName": "mystorage",
                        "credentials": {"accountKey": "c2VjcmV0"},
                        "fileMode": "0777",
                        "directoryMode": "0777",
                    }
                ],
                "azureBlobFileSystems": [
                    {
                        "accountName": "mystorage",
                        "containerName": "data",
                        "relativeMountPath": "data",
                        "credentials": {"accountKey": "c2VjcmV0"},
                    }
                ],
            },
            "cluster": {"id": CLUSTER},
            "schedulingPriority": "normal",
            "constraints": {"maxWallClockTime": "7.00:00:00"},
        }
    }


def test_options_win_over_the_environment(tmp_path):
    request, _ = build(tmp_path, storage_account_name="other", storage_account_key="b3RoZXI=")
    assert shares(request)[0]["accountName"] == "other"
    assert shares(request)[0]["credentials"] == {"accountKey": "b3RoZXI="}


def test_no_account_anywhere_is_one_problem_naming_every_mount_that_needs_it(tmp_path):
    with pytest.raises(InvalidConfig) as caught:
        build(tmp_path, env={})
    error = caught.value
    assert error.message == MSG_CONFIGURE_ACCOUNT
    # az's first sentence, which scripts grep, then what works here (there is no az configuration file).
    assert error.message == (
        "Please configure Azure Storage account name via AZURE_BATCHAI_STORAGE_ACCOUNT. batchai has no az "
        "configuration file: give --storage-account-name NAME --storage-account-key KEY, set "
        "AZURE_BATCHAI_STORAGE_ACCOUNT and AZURE_BATCHAI_STORAGE_KEY, or set AZURE_STORAGE_CONNECTION_STRING (its "
        "AccountName and AccountKey are used when nothing more specific is given)."
    )
    assert [(p.json_path, p.line, p.message) for p in error.problems] == [
        (
            "$.properties.mountVolumes.azureFileShares[0]",
            line_of(RECIPE, '"azureFileUrl"') - 1,
            "The storage account name (<AZURE_BATCHAI_STORAGE_ACCOUNT>) is not configured; 2 mounts need it: "
            "azureFileShares[0], azureBlobFileSystems[0].",
        )
    ]


def test_the_connection_string_fills_the_placeholders_when_nothing_more_specific_is_given(tmp_path):
    connection = "DefaultEndpointsProtocol=http;AccountName=fromconn;AccountKey=Y29ubg==;FileEndpoint=http://x/y"
    request, _ = build(tmp_path, env={"AZURE_STORAGE_CONNECTION_STRING": connection})
    assert shares(request)[0]["accountName"] == "fromconn"
    assert shares(request)[0]["credentials"] == {"accountKey": "Y29ubg=="}
    # More specific: the environment's account and key, then the options.
    request, _ = build(tmp_path, env={**ENV, "AZURE_STORAGE_CONNECTION_STRING": connection})
    assert shares(request)[0]["accountName"] == "mystorage"
    with pytest.raises(InvalidConfig):  # the string's key is another account's
        build(tmp_path, env={"AZURE_STORAGE_CONNECTION_STRING": connection}, storage_account_name="other")
    # The string's key serves the account named elsewhere when the string names that account.
    env = {"AZURE_BATCHAI_STORAGE_ACCOUNT": "fromconn", "AZURE_STORAGE_CONNECTION_STRING": connection}
    request, _ = build(tmp_path, env=env)
    assert shares(request)[0]["credentials"] == {"accountKey": "Y29ubg=="}


def test_account_without_key_gives_az_key_message(tmp_path):
    with pytest.raises(InvalidConfig) as caught:
        build(tmp_path, env={"AZURE_BATCHAI_STORAGE_ACCOUNT": "mystorage"})
    assert caught.value.message == MSG_CONFIGURE_KEY


def test_the_key_placeholder_is_filled_and_real_keys_are_kept(tmp_path):
    doc = copy.deepcopy(RECIPE)
    volumes = doc["properties"]["mountVolumes"]
    volumes["azureFileShares"][0]["credentials"] = {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"}
    volumes["azureBlobFileSystems"][0]["credentials"] = {"accountKey": "a2VlcA=="}
    request, _ = build(tmp_path, doc)
    assert shares(request)[0]["credentials"] == {"accountKey": "c2VjcmV0"}
    assert request["properties"]["mountVolumes"]["azureBlobFileSystems"][0]["credentials"] == {"accountKey": "a2VlcA=="}


def test_account_name_comes_from_the_file_url(tmp_path):
    doc = copy.deepcopy(RECIPE)
    doc["properties"]["mountVolumes"] = {
        "azureFileShares": [
            {"azureFileUrl": "https://batchairsa.file.core.windows.net/logs", "relativeMountPath": "logs"}
        ]
    }
    request, _ = build(tmp_path, doc, env={}, storage_account_name="batchairsa", storage_account_key="a2V5")
    assert shares(request)[0]["accountName"] == "batchairsa"
    assert shares(request)[0]["credentials"] == {"accountKey": "a2V5"}


def test_a_key_az_would_have_looked_up_in_azure_is_asked_for(tmp_path):
    """az fetched the key of an account named in the file through ARM; batchai has no ARM."""
    doc = copy.deepcopy(RECIPE)
    doc["properties"]["mountVolumes"] = {
        "azureFileShares": [
            {"azureFileUrl": "https://batchairsa.file.core.windows.net/logs", "relativeMountPath": "logs"}
        ]
    }
    with pytest.raises(InvalidConfig) as caught:
        build(tmp_path, doc)
    assert caught.value.message == MSG_CONFIGURE_KEY
    assert caught.value.hint == (
        'The file mounts storage account "batchairsa" without its key, and batchai cannot look keys up in Azure as '
        "az did: give --storage-account-name batchairsa --storage-account-key KEY, or credentials.accountKey in the "
        "file."
    )
    assert caught.value.problems[0].json_path == "$.properties.mountVolumes.azureFileShares[0].accountName"


def test_the_environment_key_serves_the_named_account_when_the_environment_names_none(tmp_path):
    request, _ = build(tmp_path, env={"AZURE_BATCHAI_STORAGE_KEY": "ZW52"}, storage_account_name="named")
    assert shares(request)[0]["credentials"] == {"accountKey": "ZW52"}
    with pytest.raises(InvalidConfig) as caught:
        build(tmp_path, storage_account_name="named")  # the environment's key is mystorage's
    assert caught.value.message == MSG_CONFIGURE_KEY


@pytest.mark.parametrize("url", ["http://http://something/is/wrong", "https://[mystorage.file.core.windows.net/logs"])
def test_ill_formed_file_url(tmp_path, url):
    doc = copy.deepcopy(RECIPE)
    doc["properties"]["mountVolumes"]["azureFileShares"][0]["azureFileUrl"] = url
    with pytest.raises(InvalidConfig) as caught:
        build(tmp_path, doc)
    assert caught.value.message == f'Ill-formed Azure File URL "{url}"'


def test_option_mounts_are_appended_in_az_order(tmp_path):
    doc = copy.deepcopy(RECIPE)
    del doc["properties"]["mountVolumes"]
    request, _ = build(tmp_path, doc, nfs_id=NFS, afs_name="share", bfs_name="container")
    assert request["properties"]["mountVolumes"] == {
        "fileServers": [{"fileServer": {"id": NFS}, "relativeMountPath": "nfs", "mountOptions": "rw"}],
        "azureFileShares": [
            {
                "accountName": "mystorage",
                "azureFileUrl": "https://mystorage.file.core.windows.net/share",
                "credentials": {"accountKey": "c2VjcmV0"},
                "relativeMountPath": "afs",
                "fileMode": "0777",
                "directoryMode": "0777",
            }
        ],
        "azureBlobFileSystems": [
            {
                "accountName": "mystorage",
                "containerName": "container",
                "credentials": {"accountKey": "c2VjcmV0"},
                "relativeMountPath": "bfs",
            }
        ],
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nfs_id": NFS, "nfs_mount_path": ""}, "File server relative mount path cannot be empty."),
        ({"afs_name": "s", "afs_mount_path": ""}, "Azure File share relative mount path cannot be empty."),
        ({"bfs_name": "c", "bfs_mount_path": ""}, "Azure Storage Container relative mount path cannot be empty."),
        ({"afs_name": "s", "env": {}}, MSG_CONFIGURE_ACCOUNT),
        ({"bfs_name": "c", "env": {"AZURE_BATCHAI_STORAGE_ACCOUNT": "a"}}, MSG_CONFIGURE_KEY),
    ],
)
def test_option_mount_messages(tmp_path, options, message):
    doc = copy.deepcopy(RECIPE)
    del doc["properties"]["mountVolumes"]
    with pytest.raises(BatchAIError) as caught:
        build(tmp_path, doc, **options)
    assert type(caught.value) is BatchAIError
    assert caught.value.message == message


def test_an_option_mount_on_a_path_the_file_uses_is_an_error(tmp_path):
    """az sent both mounts on "logs" (observed); the second hid the first."""
    with pytest.raises(InvalidConfig) as caught:
        build(tmp_path, afs_name="other", afs_mount_path="logs")
    (problem,) = caught.value.problems
    assert problem.json_path == "$.properties.mountVolumes.azureFileShares[0].relativeMountPath"
    assert problem.message == '--afs-mount-path logs mounts on "logs" too; choose another mount path'
    assert problem.line == line_of(RECIPE, '"relativeMountPath": "logs"')


def test_cluster_from_the_option_else_the_file(tmp_path):
    doc = copy.deepcopy(RECIPE)
    doc["properties"]["cluster"] = {"id": CLUSTER.replace("gpu", "cpu")}
    assert build(tmp_path, doc)[0]["properties"]["cluster"] == {"id": CLUSTER}
    assert build(tmp_path, doc, cluster_id=None)[0]["properties"]["cluster"]["id"].endswith("/clusters/cpu")
    with pytest.raises(BatchAIError) as caught:
        build(tmp_path, cluster_id=None)
    assert caught.value.message == "Please provide cluster information via command line or configuration file."


def test_unknown_keys_and_editor_keys_are_left_out_of_the_request(tmp_path):
    doc = copy.deepcopy(RECIPE)
    doc["location"] = "eastus"
    doc["properties"]["toolType"] = "custom"
    doc["properties"]["customToolkitSettings"]["processCount"] = 2
    request, warnings = build(tmp_path, doc)
    assert "location" not in request and "$schema" not in request
    assert "toolType" not in request["properties"]
    assert request["properties"]["customToolkitSettings"] == RECIPE["properties"]["customToolkitSettings"]
    assert sorted(w.json_path for w in warnings) == [
        "$.location",
        "$.properties.customToolkitSettings.processCount",
        "$.properties.toolType",
    ]
    with pytest.raises(InvalidConfig):
        build(tmp_path, doc, strict=True)


def test_placeholders_az_never_filled_fail_at_submit(tmp_path):
    doc = copy.deepcopy(RECIPE)
    container = doc["properties"]["mountVolumes"]["azureBlobFileSystems"][0]
    container.update(accountName="[your storage account name]", credentials={"accountKey": "a2V5"})
    with pytest.raises(InvalidConfig) as caught:
        build(tmp_path, doc)
    (problem,) = [p for p in caught.value.problems if p.severity == "error"]
    assert problem.json_path == "$.properties.mountVolumes.azureBlobFileSystems[0].accountName"
    assert problem.line == line_of(doc, "[your storage account name]")
    assert problem.message.startswith("expected a storage account name: 3 to 24 lowercase letters and digits")
    assert caught.value.message.startswith("The job request built from ")
    # the file's warnings come along: here, the placeholder left to fill in
    assert [p.severity for p in caught.value.problems] == ["error", "warning"]


def test_an_account_named_without_its_key_is_asked_for_as_az_failed_to_find_it(tmp_path):
    doc = copy.deepcopy(RECIPE)
    doc["properties"]["mountVolumes"]["azureBlobFileSystems"][0]["accountName"] = "[your storage account name]"
    with pytest.raises(InvalidConfig) as caught:
        build(tmp_path, doc)
    assert caught.value.message == MSG_CONFIGURE_KEY


def test_a_cluster_id_that_is_not_one_fails_at_submit(tmp_path):
    with pytest.raises(InvalidConfig) as caught:
        build(tmp_path, cluster_id="gpu")
    assert caught.value.problems[0].json_path == "$.properties.cluster.id"


def test_an_old_file_is_submitted_as_2018_05_01(tmp_path):
    doc = {
        "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2017-09-01-preview/job.json",
        "properties": {
            "experimentName": "e",
            "priority": 10,
            "nodeCount": 1,
            "stdOutErrPathPrefix": "x",
            "customToolkitSettings": {"commandLine": "echo"},
            "outputDirectories": [{"id": "OUT", "pathPrefix": "p", "type": "model"}],
        },
    }
    request, notes = build(tmp_path, doc)
    assert request["properties"]["schedulingPriority"] == "high"
    assert request["properties"]["outputDirectories"] == [{"id": "OUT", "pathPrefix": "p"}]
    assert "experimentName" not in request["properties"]
    assert [note.severity for note in notes] == ["note", "note", "note"]


def test_the_flat_form_gives_the_same_request(tmp_path):
    flat = {"$schema": RECIPE["$schema"], **RECIPE["properties"]}
    assert build(tmp_path, flat) == build(tmp_path)
