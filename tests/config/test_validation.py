"""File-level validation: messages a person understands, each at its JSON path, line and column."""

from __future__ import annotations

import copy
import json

import pytest

from batchai_cli.config import load_document, tool_type, validate_file
from batchai_cli.errors import BatchAIError, InvalidConfig

JOB = {
    "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/job.json",
    "properties": {
        "nodeCount": 1,
        "tensorFlowSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/train.py"},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
        "mountVolumes": {
            "azureFileShares": [
                {
                    "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/logs",
                    "relativeMountPath": "logs",
                }
            ]
        },
    },
}
CLUSTER = {"properties": {"vmSize": "STANDARD_NC6", "scaleSettings": {"manual": {"targetNodeCount": 1}}}}


def write(tmp_path, doc, name="job.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2), encoding="utf-8")
    return path


def edited(doc, **changes):
    doc = copy.deepcopy(doc)
    doc["properties"].update(changes)
    return doc


def problems(tmp_path, doc, kind="job", **options):
    return [(p.severity, p.json_path, p.message) for p in validate_file(write(tmp_path, doc), kind, **options)]


def test_a_recipe_style_job_is_valid(tmp_path):
    assert validate_file(write(tmp_path, JOB), "job") == []
    document = load_document(write(tmp_path, JOB), "job")
    assert document.version == "2018-05-01"
    assert tool_type(document.properties) == "tensorflow"


def test_wrong_type_says_what_was_expected_with_line_and_column(tmp_path):
    text = json.dumps(edited(JOB, nodeCount="two"), indent=2)
    (problem,) = validate_file(write(tmp_path, text), "job")
    line = next(number for number, content in enumerate(text.splitlines(), 1) if '"two"' in content)
    assert (problem.severity, problem.json_path, problem.message) == (
        "error",
        "$.properties.nodeCount",
        'expected an integer, got "two"',
    )
    assert (problem.line, problem.column) == (line, text.splitlines()[line - 1].index('"two"') + 1)


def test_all_errors_at_once_in_file_order(tmp_path):
    doc = edited(JOB, nodeCount=0, schedulingPriority="urgent", stdOutErrPathPrefix=5)
    found = problems(tmp_path, doc)
    assert found == [
        ("error", "$.properties.nodeCount", "expected at least 1, got 0"),
        ("error", "$.properties.stdOutErrPathPrefix", "expected a string, got 5"),
        ("error", "$.properties.schedulingPriority", 'expected one of "low", "normal", "high", got "urgent"'),
    ]


def test_missing_required_field_points_at_its_object(tmp_path):
    doc = copy.deepcopy(JOB)
    del doc["properties"]["nodeCount"]
    (problem,) = validate_file(write(tmp_path, doc), "job")
    assert problem.json_path == "$.properties.nodeCount"
    assert problem.message == ("required, but missing (number of compute nodes to run the job on)")
    assert (problem.line, problem.column) == (3, 17)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {},
            "no toolkit settings: a job gives exactly one of cntkSettings, pyTorchSettings, tensorFlowSettings, "
            "caffeSettings, caffe2Settings, chainerSettings, customToolkitSettings, customMpiSettings, "
            "horovodSettings",
        ),
        (
            {"cntkSettings": {}, "customToolkitSettings": {"commandLine": "x"}},
            "a job has one toolkit, but this one gives cntkSettings and customToolkitSettings; keep one",
        ),
    ],
)
def test_exactly_one_toolkit(tmp_path, settings, message):
    doc = copy.deepcopy(JOB)
    del doc["properties"]["tensorFlowSettings"]
    doc["properties"].update(settings)
    assert problems(tmp_path, doc) == [("error", "$.properties", message)]


def test_manual_or_auto_scale(tmp_path):
    both = edited(
        CLUSTER,
        scaleSettings={"manual": {"targetNodeCount": 1}, "autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 2}},
    )
    assert problems(tmp_path, both, "cluster") == [
        ("error", "$.properties.scaleSettings", "give either manual or autoScale, not both")
    ]
    neither = edited(CLUSTER, scaleSettings={})
    assert problems(tmp_path, neither, "cluster") == [
        ("error", "$.properties.scaleSettings", "give either manual or autoScale")
    ]


def test_auto_scale_minimum_above_maximum_uses_az_message(tmp_path):
    doc = edited(CLUSTER, scaleSettings={"autoScale": {"minimumNodeCount": 3, "maximumNodeCount": 1}})
    assert problems(tmp_path, doc, "cluster") == [
        (
            "error",
            "$.properties.scaleSettings.autoScale.maximumNodeCount",
            "Maximum nodes count must be greater or equal to minimum nodes count (1 < 3)",
        )
    ]


def test_unknown_keys_warn_with_the_closest_key_and_strict_makes_them_errors(tmp_path):
    doc = edited(JOB, nodeCont=2)
    doc["properties"]["tensorFlowSettings"]["pythonScriptPath"] = "x.py"
    expected = [
        (
            "warning",
            "$.properties.tensorFlowSettings.pythonScriptPath",
            'unknown key "pythonScriptPath", ignored (as az did); did you mean "pythonScriptFilePath"?',
        ),
        ("warning", "$.properties.nodeCont", 'unknown key "nodeCont", ignored (as az did); did you mean "nodeCount"?'),
    ]
    assert problems(tmp_path, doc) == expected
    assert problems(tmp_path, doc, strict=True) == [("error", path, message) for _, path, message in expected]
    with pytest.raises(InvalidConfig):
        load_document(write(tmp_path, doc), "job", strict=True)


def test_unknown_key_hints(tmp_path):
    doc = copy.deepcopy(CLUSTER)
    doc["vmPriority"] = "lowpriority"
    doc["properties"]["virtualMachineConfiguration"] = {"publisher": "Canonical"}
    doc["properties"]["userAccountSettings"] = {"adminusername": "me", "adminUserPassword": "x"}
    assert problems(tmp_path, doc, "cluster") == [
        (
            "warning",
            "$.properties.virtualMachineConfiguration.publisher",
            'unknown key "publisher", ignored (as az did); it belongs inside "imageReference" '
            "(imageReference.publisher)",
        ),
        (
            "warning",
            "$.properties.userAccountSettings.adminusername",
            'unknown key "adminusername", ignored (as az did); did you mean "adminUserName"?',
        ),
        ("warning", "$.vmPriority", 'unknown key "vmPriority", ignored (as az did): it belongs inside "properties"'),
    ]


def test_enum_suggests_the_right_case(tmp_path):
    assert problems(tmp_path, edited(CLUSTER, vmPriority="lowPriority"), "cluster") == [
        (
            "error",
            "$.properties.vmPriority",
            'expected one of "dedicated", "lowpriority", got "lowPriority"; did you mean "lowpriority"?',
        )
    ]


def test_quoted_numbers_are_converted_with_a_warning(tmp_path):
    doc = edited(CLUSTER, scaleSettings={"autoScale": {"minimumNodeCount": "1", "maximumNodeCount": "3"}})
    document = load_document(write(tmp_path, doc, "c.json"), "cluster")
    assert document.properties["scaleSettings"]["autoScale"] == {"minimumNodeCount": 1, "maximumNodeCount": 3}
    assert [w.message for w in document.warnings] == [
        'a number in quotes ("1"): az converted it to 1, and so does batchai; write 1 without quotes',
        'a number in quotes ("3"): az converted it to 3, and so does batchai; write 3 without quotes',
    ]
    assert problems(tmp_path, edited(JOB, nodeCount="0")) == [
        ("error", "$.properties.nodeCount", "expected at least 1, got 0"),
        (
            "warning",
            "$.properties.nodeCount",
            'a number in quotes ("0"): az converted it to 0, and so does batchai; write 0 without quotes',
        ),
    ]


def test_two_mounts_on_one_path_are_an_error(tmp_path):
    doc = copy.deepcopy(JOB)
    doc["properties"]["mountVolumes"]["azureBlobFileSystems"] = [
        {"accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>", "containerName": "data", "relativeMountPath": "logs/"}
    ]
    assert problems(tmp_path, doc) == [
        (
            "error",
            "$.properties.mountVolumes.azureBlobFileSystems[0].relativeMountPath",
            'two mounts on relativeMountPath "logs/": azureFileShares[0] mounts there too; give each its own path',
        )
    ]


def test_names_that_become_environment_variables(tmp_path):
    doc = edited(
        JOB,
        outputDirectories=[
            {"id": "MODEL", "pathPrefix": "p"},
            {"id": "MODEL", "pathPrefix": "q"},
            {"id": "stdouterr", "pathPrefix": "r"},
            {"id": "my-dir", "pathPrefix": "s"},
        ],
        environmentVariables=[{"name": "A", "value": "1"}],
        secrets=[{"name": "A", "value": "2", "valueSecretReference": {"sourceVault": {"id": "v"}, "secretUrl": "u"}}],
    )
    assert problems(tmp_path, doc) == [
        (
            "error",
            "$.properties.outputDirectories[1].id",
            'directory id "MODEL" is given twice (also at outputDirectories[0])',
        ),
        (
            "error",
            "$.properties.outputDirectories[2].id",
            '"stdouterr" is reserved for the job\'s stdout and stderr; choose another id',
        ),
        (
            "error",
            "$.properties.outputDirectories[3].id",
            "expected letters, digits and _ only (the id becomes part of the variable AZ_BATCHAI_OUTPUT_<id>), "
            'got "my-dir"',
        ),
        ("error", "$.properties.secrets[0]", "give either value or valueSecretReference, not both"),
        (
            "error",
            "$.properties.secrets[0].name",
            'environment variable "A" is given twice (also at environmentVariables[0])',
        ),
    ]


def test_invalid_ssh_key_in_a_cluster_file_uses_az_message(tmp_path):
    doc = edited(CLUSTER, userAccountSettings={"adminUserName": "me", "adminUserSshPublicKey": "my key"})
    assert problems(tmp_path, doc, "cluster") == [
        ("error", "$.properties.userAccountSettings.adminUserSshPublicKey", "Incorrect ssh public key value.")
    ]


def test_placeholders_left_to_fill_in_are_warnings(tmp_path):
    doc = edited(CLUSTER, userAccountSettings={"adminUserName": "<admin username>", "adminUserPassword": "x"})
    doc["properties"]["nodeSetup"] = {
        "setupTask": {
            "commandLine": "cat < in > out",
            "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/<AZURE_BATCHAI_STORAGE_ACCOUNT>",
        }
    }
    assert problems(tmp_path, doc, "cluster") == [
        (
            "warning",
            "$.properties.userAccountSettings.adminUserName",
            '"<admin username>" looks like a placeholder left to fill in (az sent it as written)',
        ),
        (
            "warning",
            "$.properties.nodeSetup.setupTask.stdOutErrPathPrefix",
            "the <AZURE_BATCHAI_STORAGE_...> placeholders are filled in only inside mountVolumes (as az did); here it "
            "stays as written",
        ),
    ]


def test_the_flat_form_reports_the_paths_the_user_wrote(tmp_path):
    flat = {"$schema": JOB["$schema"], **edited(JOB, nodeCount="x")["properties"]}
    text = json.dumps(flat, indent=2)
    (problem,) = validate_file(write(tmp_path, text), "job")
    assert (problem.json_path, problem.line) == ("$.nodeCount", 3)
    document = load_document(write(tmp_path, {**flat, "nodeCount": 2}), "job")
    assert document.flat and document.properties["nodeCount"] == 2
    assert document.data["$schema"] == JOB["$schema"]


def test_schema_of_another_kind_is_an_error(tmp_path):
    doc = {
        **CLUSTER,
        "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/cluster.json",
    }
    assert problems(tmp_path, doc, "job") == [
        (
            "error",
            "$['$schema']",
            "$schema says this is a cluster file, not a job file; check it with `batchai validate cluster`",
        )
    ]


def test_nfs_schema_means_a_file_server(tmp_path):
    doc = {
        "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/nfs.json",
        "properties": {"vmSize": "STANDARD_D1"},
    }
    assert problems(tmp_path, doc, "file-server") == []


def test_toolkit_schema_that_does_not_match_the_job(tmp_path):
    doc = {**JOB, "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/cntk.json"}
    assert problems(tmp_path, doc) == [
        ("warning", "$['$schema']", "$schema is the cntk job schema, but the job gives tensorFlowSettings")
    ]


def test_unsupported_and_unreadable_schema_urls(tmp_path):
    assert problems(tmp_path, {**JOB, "$schema": "https://example.com/schemas/2019-01-01/job.json"}) == [
        (
            "error",
            "$['$schema']",
            "API version 2019-01-01 is not one batchai reads (2017-09-01-preview, 2018-03-01, 2018-05-01)",
        )
    ]
    assert problems(tmp_path, {**JOB, "$schema": "https://example.com/job.json"}) == [
        ("warning", "$['$schema']", "names no API version (such as 2018-05-01); reading the file as 2018-05-01")
    ]
    assert problems(tmp_path, {**JOB, "$schema": 7}) == [
        ("error", "$['$schema']", "expected a string, got 7"),
    ]


def test_tool_type_needs_exactly_one_toolkit():
    assert tool_type({"customMpiSettings": {}}) == "mpi"
    assert tool_type({"pyTorchSettings": {}}) == "pytorch"
    with pytest.raises(BatchAIError):
        tool_type({})
