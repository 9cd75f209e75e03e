"""Files written for API 2017-09-01-preview and 2018-03-01: validated at their version, upgraded with notes."""

from __future__ import annotations

import json

import pytest

from batchai_cli.config import load_document, validate_file

OFFICIAL = "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/{}/{}.json"


def write(tmp_path, doc, name="file.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return path


def old_job(version, **properties):
    return {
        "$schema": OFFICIAL.format(version, "job"),
        "properties": {
            "nodeCount": 1,
            "tensorFlowSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_MOUNT_ROOT/external/train.py"},
            "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external",
            **properties,
        },
    }


def test_2017_job_fields_are_upgraded_with_notes(tmp_path):
    doc = old_job(
        "2017-09-01-preview",
        experimentName="MNIST",
        priority=-5,
        location="eastus",
        outputDirectories=[
            {"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/x", "type": "model", "createNew": True}
        ],
        environmentVariables=[{"name": "EMPTY"}],
    )
    document = load_document(write(tmp_path, doc), "job")
    assert document.version == "2017-09-01-preview"
    assert document.warnings == []
    assert document.properties == {
        "nodeCount": 1,
        "tensorFlowSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_MOUNT_ROOT/external/train.py"},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external",
        "schedulingPriority": "low",
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/x"}],
        "environmentVariables": [{"name": "EMPTY", "value": ""}],
    }
    assert [(n.severity, n.json_path, n.message) for n in document.notes] == [
        (
            "note",
            "$.properties.experimentName",
            'experimentName "MNIST" is dropped: in API 2018-05-01 a job belongs to the experiment given with -e',
        ),
        ("note", "$.properties.priority", 'priority -5 is now schedulingPriority "low"'),
        (
            "note",
            "$.properties.location",
            'location "eastus" is dropped: in API 2018-05-01 the workspace\'s location is used',
        ),
        ("note", "$.properties.outputDirectories[0].type", 'type "model" is dropped: API 2018-05-01 has no such field'),
        (
            "note",
            "$.properties.outputDirectories[0].createNew",
            "createNew true is dropped: API 2018-05-01 has no such field",
        ),
        (
            "note",
            "$.properties.environmentVariables[0]",
            '"EMPTY" has no value: API 2018-05-01 requires one, so it is set to ""',
        ),
    ]


def test_2017_tensorflow_without_master_args_is_valid(tmp_path):
    """The official 2017 schema required masterCommandLineArgs; the 2018 TensorFlow-GPU recipes omit it."""
    assert validate_file(write(tmp_path, old_job("2017-09-01-preview")), "job") == []


def test_fields_of_later_versions_in_an_old_file(tmp_path):
    doc = old_job("2018-03-01", containerSettings={"imageSourceRegistry": {"image": "ubuntu"}, "shmSize": "8g"})
    (warning,) = validate_file(write(tmp_path, doc), "job")
    assert (warning.json_path, warning.message) == (
        "$.properties.containerSettings.shmSize",
        '"shmSize" is not part of API 2018-03-01, but 2018-05-01 has it and batchai uses it; update $schema to '
        "2018-05-01",
    )
    assert load_document(write(tmp_path, doc), "job").properties["containerSettings"]["shmSize"] == "8g"


def test_horovod_did_not_exist_in_2018_03_01(tmp_path):
    doc = old_job("2018-03-01")
    doc["properties"]["horovodSettings"] = doc["properties"].pop("tensorFlowSettings")
    messages = [p.message for p in validate_file(write(tmp_path, doc), "job")]
    assert messages[0].startswith("no toolkit settings: a job gives exactly one of cntkSettings, pyTorchSettings")
    assert "horovodSettings" not in messages[0]


def cluster_with_credentials_info(version=None, credentials=None):
    share = {
        "accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
        "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/share",
        "credentialsInfo": credentials or {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"},
        "relativeMountPath": "azfiles",
    }
    doc = {
        "location": "eastus",
        "properties": {
            "vmSize": "STANDARD_D1",
            "nodeSetup": {
                "mountVolumes": {"azureFileShares": [share]},
                "setupTask": {
                    "commandLine": "echo",
                    "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/azfiles",
                    "runElevated": True,
                },
            },
        },
    }
    if version:
        doc["$schema"] = OFFICIAL.format(version, "cluster")
    return doc


def test_credentials_info_is_renamed_in_2017_files(tmp_path):
    document = load_document(write(tmp_path, cluster_with_credentials_info("2017-09-01-preview")), "cluster")
    share = document.properties["nodeSetup"]["mountVolumes"]["azureFileShares"][0]
    assert share["credentials"] == {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"}
    assert "credentialsInfo" not in share
    assert "location" not in document.data
    assert [(n.json_path, n.message) for n in document.notes] == [
        ("$.location", "location is dropped: API 2018-05-01 has no location (the workspace's is used)"),
        (
            "$.properties.nodeSetup.mountVolumes.azureFileShares[0].credentialsInfo",
            "credentialsInfo is now credentials",
        ),
        (
            "$.properties.nodeSetup.setupTask.runElevated",
            "runElevated true is dropped: in API 2018-05-01 setup tasks run as root",
        ),
    ]


def test_credentials_info_in_a_2018_05_01_file_is_ignored_as_az_did(tmp_path):
    (location, warning, elevated) = validate_file(write(tmp_path, cluster_with_credentials_info()), "cluster")
    assert (location.json_path, elevated.json_path) == ("$.location", "$.properties.nodeSetup.setupTask.runElevated")
    assert warning.message == (
        'unknown key "credentialsInfo", ignored (as az did): the 2017-09-01-preview name of '
        "credentials; write credentials"
    )


def test_a_key_vault_secret_url_cannot_be_upgraded(tmp_path):
    doc = cluster_with_credentials_info("2017-09-01-preview", {"accountKeySecretUrl": "https://v.vault.azure.net/s"})
    (problem, *_) = [p for p in validate_file(write(tmp_path, doc), "cluster") if p.severity == "error"]
    assert (
        problem.json_path
        == "$.properties.nodeSetup.mountVolumes.azureFileShares[0].credentialsInfo.accountKeySecretUrl"
    )
    assert problem.message.startswith("accountKeySecretUrl has no API 2018-05-01 equivalent")


def test_a_later_error_points_at_the_renamed_key(tmp_path):
    doc = cluster_with_credentials_info("2017-09-01-preview", {"accountKey": "k"})
    doc["properties"]["nodeSetup"]["mountVolumes"]["azureFileShares"].append(
        dict(doc["properties"]["nodeSetup"]["mountVolumes"]["azureFileShares"][0])
    )
    problems = [p for p in validate_file(write(tmp_path, doc), "cluster") if p.severity == "error"]
    assert [(p.json_path, p.line is not None) for p in problems] == [
        ("$.properties.nodeSetup.mountVolumes.azureFileShares[1].relativeMountPath", True)
    ]


@pytest.mark.parametrize(("priority", "level"), [(-1000, "low"), (0, "normal"), (1, "high"), (1000, "high")])
def test_priority_maps_to_scheduling_priority(tmp_path, priority, level):
    document = load_document(write(tmp_path, old_job("2018-03-01", priority=priority)), "job")
    assert document.properties["schedulingPriority"] == level


def test_priority_out_of_range_is_an_error_at_its_version(tmp_path):
    (problem,) = validate_file(write(tmp_path, old_job("2018-03-01", priority=5000)), "job")
    assert (problem.json_path, problem.message) == ("$.properties.priority", "expected at most 1000, got 5000")
