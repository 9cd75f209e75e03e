"""A hypothesis fuzz of job.json, cluster.json and the CLI's arguments: whatever comes in, batchai
answers with a message and an exit code, never a traceback ("Unexpected error") and never a hang.

BATCHAI_FUZZ_EXAMPLES sets the number of cases of each test (`make soak`: 10,000; `make test`: 60).
"""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("BATCHAI_FUZZ_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,
)

JOB_KEYS = [
    "nodeCount", "customToolkitSettings", "commandLine", "stdOutErrPathPrefix", "outputDirectories", "id",
    "pathPrefix", "pathSuffix", "inputDirectories", "path", "environmentVariables", "secrets", "name", "value",
    "constraints", "maxWallClockTime", "mountVolumes", "azureFileShares", "azureBlobFileSystems", "localFolders",
    "relativeMountPath", "accountName", "containerName", "credentials", "accountKey", "tensorFlowSettings",
    "parameterServerCount", "pyTorchSettings", "pythonScriptFilePath", "containerSettings", "imageSourceRegistry",
    "image", "jobPreparation", "schedulingPriority", "cluster", "$schema", "properties",
]  # fmt: skip
CLUSTER_KEYS = [
    "vmSize", "scaleSettings", "manual", "targetNodeCount", "autoScale", "minimumNodeCount", "maximumNodeCount",
    "initialNodeCount", "userAccountSettings", "adminUserName", "adminUserPassword", "adminUserSshPublicKey",
    "nodeSetup", "setupTask", "commandLine", "stdOutErrPathPrefix", "mountVolumes", "engine", "type", "partition",
    "properties",
]  # fmt: skip
TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["../..", "/etc/passwd", "$AZ_BATCHAI_JOB_MOUNT_ROOT/../x", "99999999999.00:00:00", "P99999999999D",
         "<AZURE_BATCHAI_STORAGE_KEY>", "\x00", "\ud800", "-1", "1e309", "7.00:00:00", ""]
    ),
)  # fmt: skip
NUMBERS = st.one_of(st.integers(), st.floats(allow_nan=True), st.sampled_from([2**31, 2**63, 10**20, -1, 0]))


def documents(keys: list[str]):
    scalar = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
    return st.recursive(
        scalar,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), inner, max_size=6)
        ),
        max_leaves=25,
    )


def _no_traceback(result) -> None:
    assert "Unexpected error" not in result.err, result.err
    assert "Traceback" not in result.err, result.err
    assert result.code in (0, 1, 2, 3), (result.code, result.err)


def _dump(value) -> str:
    return json.dumps(value, allow_nan=True)


@FUZZ
@given(document=documents(JOB_KEYS), wrap=st.booleans())
def test_fuzzed_job_files_get_a_message(batchai, tmp_path, document, wrap):
    path = tmp_path / "job.json"
    path.write_text(_dump({"properties": document} if wrap else document), errors="surrogatepass")
    _no_traceback(batchai("validate", "job", str(path)))
    create = ("job", "create", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "j", "-c", "none", "-f")
    _no_traceback(batchai(*create, str(path)))


@FUZZ
@given(document=documents(CLUSTER_KEYS), wrap=st.booleans())
def test_fuzzed_cluster_files_get_a_message(batchai, tmp_path, document, wrap):
    path = tmp_path / "cluster.json"
    path.write_text(_dump({"properties": document} if wrap else document), errors="surrogatepass")
    _no_traceback(batchai("validate", "cluster", str(path)))
    _no_traceback(batchai("cluster", "create", "-g", "rg", "-w", "none", "-n", "c", "-f", str(path)))


# Commands that return at once whatever their arguments (no waiting, no job started).
COMMANDS = [
    ["workspace", "list"], ["workspace", "show"], ["workspace", "create"], ["experiment", "list"],
    ["experiment", "show"], ["cluster", "list"], ["cluster", "show"], ["cluster", "resize"],
    ["cluster", "auto-scale"], ["job", "list"], ["job", "show"], ["job", "file", "list"],
    ["job", "node", "list"], ["configure"], ["validate", "job"], ["storage", "container", "create"],
]  # fmt: skip
OPTIONS = [
    "-g", "-w", "-e", "-n", "-c", "-j", "-t", "--min", "--max", "-o", "--query", "--ids", "-d", "-p", "--defaults",
    "--account-name", "--account-key", "--connection-string", "-l", "--expiry", "--subscription", "-y",
]  # fmt: skip
ARGUMENT = st.one_of(
    TEXT, st.sampled_from(OPTIONS), st.integers().map(str), st.sampled_from(["json", "table", "tsv", "[" * 3000])
)


@FUZZ
@given(command=st.sampled_from(COMMANDS), arguments=st.lists(ARGUMENT, max_size=8))
def test_fuzzed_command_lines_get_a_message(batchai, command, arguments):
    if "--account-name" in arguments or "--connection-string" in arguments:
        arguments = [a for a in arguments if a not in ("--account-name", "--connection-string")]  # no network
    _no_traceback(batchai(*command, *arguments))
