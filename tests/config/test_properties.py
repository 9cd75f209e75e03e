"""Property-based: mutate valid documents (as data and as bytes); nothing but InvalidConfig ever comes out.

validate_file never raises; load_document and build_*_request either succeed, with a request that
is JSON and complete, or raise InvalidConfig with at least one error that has a message.
"""

from __future__ import annotations

import base64
import copy
import json
import struct
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchai_cli.config import (
    build_cluster_request,
    build_file_server_request,
    build_job_request,
    load_document,
    validate_file,
)
from batchai_cli.errors import InvalidConfig

CLUSTER_ID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/clusters/c"
ENV = {"AZURE_BATCHAI_STORAGE_ACCOUNT": "mystorage", "AZURE_BATCHAI_STORAGE_KEY": "c2VjcmV0"}
KEY = "ssh-rsa " + base64.b64encode(struct.pack(">I", 7) + b"ssh-rsa" + b"\x00" * 32).decode() + " me"
OFFICIAL = "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/{}/{}.json"

JOB = {
    "$schema": OFFICIAL.format("2018-05-01", "job"),
    "properties": {
        "nodeCount": 2,
        "tensorFlowSettings": {"pythonScriptFilePath": "train.py", "workerCount": 2, "parameterServerCount": 1},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
        "inputDirectories": [{"id": "DATA", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/data"}],
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs", "pathSuffix": "m"}],
        "environmentVariables": [{"name": "A", "value": "1"}],
        "secrets": [{"name": "B", "value": "2"}],
        "constraints": {"maxWallClockTime": "1.00:00:00"},
        "containerSettings": {"imageSourceRegistry": {"image": "tensorflow/tensorflow"}, "shmSize": "8g"},
        "mountVolumes": {
            "azureFileShares": [
                {
                    "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/logs",
                    "relativeMountPath": "logs",
                }
            ],
            "azureBlobFileSystems": [
                {
                    "accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
                    "containerName": "data",
                    "relativeMountPath": "data",
                    "credentials": {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"},
                }
            ],
        },
    },
}
OLD_JOB = {
    "$schema": OFFICIAL.format("2017-09-01-preview", "job"),
    "properties": {
        "experimentName": "e",
        "priority": 3,
        "nodeCount": 1,
        "stdOutErrPathPrefix": "x",
        "customToolkitSettings": {"commandLine": "echo"},
        "outputDirectories": [{"id": "O", "pathPrefix": "p", "type": "model", "createNew": True}],
    },
}
CLUSTER = {
    "properties": {
        "vmSize": "STANDARD_NC6",
        "scaleSettings": {"autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 2}},
        "userAccountSettings": {"adminUserName": "me", "adminUserSshPublicKey": KEY},
        "virtualMachineConfiguration": {"imageReference": {"publisher": "a", "offer": "b", "sku": "c"}},
        "nodeSetup": {
            "setupTask": {
                "commandLine": "echo",
                "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
                "secrets": [{"name": "S", "value": "v"}],
            },
            "mountVolumes": {
                "azureFileShares": [
                    {
                        "accountName": "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
                        "azureFileUrl": "https://<AZURE_BATCHAI_STORAGE_ACCOUNT>.file.core.windows.net/share",
                        "credentialsInfo": {"accountKey": "<AZURE_BATCHAI_STORAGE_KEY>"},
                        "relativeMountPath": "afs",
                    }
                ]
            },
        },
        "engine": {"type": "slurm", "partition": "gpu"},
    }
}
FILE_SERVER = {
    "properties": {
        "vmSize": "STANDARD_D1",
        "sshConfiguration": {"userAccountSettings": {"adminUserName": "me", "adminUserPassword": "pw"}},
        "dataDisks": {"diskSizeInGB": 10, "diskCount": 2, "storageAccountType": "Standard_LRS"},
    }
}
BASES = [("job", JOB), ("job", OLD_JOB), ("cluster", CLUSTER), ("file-server", FILE_SERVER)]

INTERESTING_TEXT = st.sampled_from(
    [
        "",
        " ",
        "afs",
        "logs",
        "/abs",
        "../up",
        "2",
        "-1",
        "1.5",
        "two",
        "0777",
        "P7D",
        "7.00:00:00",
        "00:99:00",
        "<AZURE_BATCHAI_STORAGE_ACCOUNT>",
        "<AZURE_BATCHAI_STORAGE_KEY>",
        "[your storage account name]",
        "https://nodot/share",
        "http://http://x/y",
        KEY,
        "ssh-rsa AAAA",
        "~/.ssh/id_rsa.pub",
        "manual",
        "autoScale",
        "credentialsInfo",
        "cntkSettings",
        "properties",
        "$schema",
        "stdouterr",
        "Python",
        "BrainScript",
        OFFICIAL.format("2018-03-01", "job"),
        OFFICIAL.format("2017-09-01-preview", "cluster"),
        OFFICIAL.format("2019-01-01", "nfs"),
        OFFICIAL.format("2018-05-01", "cntk"),
    ]
)
TEXT = INTERESTING_TEXT | st.text(max_size=12)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**66), 2**66) | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=6,
)


def nodes(value, path=()):
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from nodes(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from nodes(child, (*path, index))


def parent_of(doc, path):
    for part in path[:-1]:
        doc = doc[part]
    return doc


@st.composite
def mutated_documents(draw):
    kind, base = draw(st.sampled_from(BASES))
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(nodes(doc))))
        action = draw(st.sampled_from(["replace", "delete", "insert", "wrap"]))
        if not path:
            if action == "replace":
                doc = draw(VALUES)
            continue
        parent = parent_of(doc, path)
        if action == "replace":
            parent[path[-1]] = draw(VALUES)
        elif action == "delete":
            del parent[path[-1]]
        elif action == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        elif isinstance(parent, dict):
            parent[draw(TEXT)] = draw(VALUES)
        else:
            parent.insert(draw(st.integers(0, len(parent))), draw(VALUES))
        if not isinstance(doc, (dict, list)):
            break
    return kind, doc


@st.composite
def mutated_bytes(draw):
    kind, base = draw(st.sampled_from(BASES))
    data = bytearray(json.dumps(base, indent=draw(st.sampled_from([None, 2]))).encode())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["delete", "insert", "truncate", "flip"]))
        if action == "delete" and at < len(data):
            del data[at : at + draw(st.integers(1, 8))]
        elif action == "insert":
            data[at:at] = draw(
                st.binary(max_size=4) | st.sampled_from([b",", b"}", b"]", b"[", b'"', b"\\", b"\xef\xbb\xbf"])
            )
        elif action == "truncate":
            del data[at:]
        elif at < len(data):
            data[at] = draw(st.integers(0, 255))
    return kind, bytes(data)


def build(kind, path):
    home = Path(tempfile.mkdtemp())
    if kind == "job":
        return build_job_request(path, cluster_id=CLUSTER_ID, env=ENV, afs_name="extra", afs_mount_path="extra")
    if kind == "cluster":
        return build_cluster_request(
            path, vm_size="STANDARD_NC6", target=1, user_name="me", password="pw", env=ENV, home=home
        )
    return build_file_server_request(
        path,
        vm_size="STANDARD_D1",
        disk_count=1,
        disk_size=10,
        storage_sku="Premium_LRS",
        user_name="me",
        password="pw",
        home=home,
    )


def check(kind, path):
    problems = validate_file(path, kind)  # never raises
    assert all(problem.message and problem.severity in ("error", "warning", "note") for problem in problems)
    try:
        load_document(path, kind)
    except InvalidConfig as exc:
        assert any(problem.severity == "error" for problem in exc.problems)
        assert any(problem.severity == "error" for problem in problems)
    else:
        assert not any(problem.severity == "error" for problem in problems)
    try:
        request, _ = build(kind, path)
    except InvalidConfig as exc:
        assert exc.problems and exc.message
    else:
        json.dumps(request, allow_nan=False)
        assert isinstance(request["properties"], dict)


FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(mutated_documents())
def test_mutated_documents_give_only_config_errors(tmp_path_factory, case):
    kind, doc = case
    path = tmp_path_factory.mktemp("doc") / "file.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    check(kind, path)


@FAST
@given(mutated_bytes())
def test_mutated_bytes_give_only_config_errors(tmp_path_factory, case):
    kind, data = case
    path = tmp_path_factory.mktemp("raw") / "file.json"
    path.write_bytes(data)
    check(kind, path)


def test_the_unmutated_bases_are_valid(tmp_path):
    for index, (kind, doc) in enumerate(BASES):
        path = tmp_path / f"{index}.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        assert not [p for p in validate_file(path, kind) if p.severity == "error"]
        build(kind, path)
