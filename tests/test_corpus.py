"""The corpus walk: every real job, cluster and file-server file we have, with the outcome each must give.

tests/data/corpus/batchai-recipes   the official recipes and every historical version of them
  from-docs/configs                config blocks from the Batch AI docs
tests/data/corpus/wild              files users wrote (kinds in wild/SOURCES.md)

Recipes validate at their own API version and build into complete requests; the docs' complete
configs validate as their kind and their broken blocks give clean errors with line and column; wild
files give what az would have accepted, or a clear error where az (or the service) failed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from batchai_cli.config import (
    TOOLKIT_SETTINGS,
    build_cluster_request,
    build_file_server_request,
    build_job_request,
    load_document,
    tool_type,
    validate_file,
)
from batchai_cli.config.mounts import MSG_CONFIGURE_KEY
from batchai_cli.errors import BatchAIError, InvalidConfig

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"
RECIPES = CORPUS / "batchai-recipes"
DOCS = RECIPES / "from-docs" / "configs"
WILD = CORPUS / "wild"

CLUSTER_ID = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/clusters/gpu"
ENV = {"AZURE_BATCHAI_STORAGE_ACCOUNT": "mystorage", "AZURE_BATCHAI_STORAGE_KEY": "c2VjcmV0"}
VERSION = re.compile(r"schemas/(2017-09-01-preview|2018-03-01|2018-05-01)/")


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def errors(problems):
    return [(p.json_path, p.line, p.column, p.message) for p in problems if p.severity == "error"]


def warnings(problems):
    return sorted(p.json_path for p in problems if p.severity == "warning")


# -- recipes: top level and history/ ---------------------------------------------------------------

RECIPE_FILES = sorted(RECIPES.glob("*.json")) + sorted((RECIPES / "history").glob("*.json"))
NOT_JSON = {  # kept in the corpus on purpose, as broken as they were committed
    "history/TensorFlow__TensorFlow-GPU-Distributed__job@2018-08-23_7cef9df.json": (
        25,
        9,
        "expected a value (a trailing comma before it?)",
    ),
    "history/TensorFlow__TensorFlow-GPU__job@2018-05-15_1ace2a6.json": (
        7,
        9,
        "expected a property name in double quotes (a trailing comma before it?)",
    ),
}
TF_DATASET_WARNINGS = [
    "$.properties.tensorFlowSettings.masterCommandLineArgs",
    "$.properties.tensorFlowSettings.workerCommandLineArgs",
]
# Keys az dropped without a word, and variables no directory defines; each one a real mistake in a recipe.
RECIPE_WARNINGS = {
    "history/CNTK__CNTK-GPU-Python-Distrbuted-Infiniband__job@2017-12-11_e4bc842.json": [
        "$.properties.cntkSettings.process_count"
    ],
    "history/CNTK__CNTK-GPU-Python-Distributed__job@2017-10-07_329bd9d.json": [
        "$.properties.cntkSettings.process_count"
    ],
    "history/CNTK__CNTK-GPU-Python-Distributed__job@2017-10-09_876c4d0.json": [
        "$.properties.cntkSettings.process_count"
    ],
    "history/Chainer__Chainer-GPU-Distributed__job@2017-10-07_8ab99dc.json": [
        "$.properties.chainerSettings.masterCommandLineArgs"
    ],
    "history/Chainer__Chainer-GPU-Distributed__job@2017-10-09_876c4d0.json": [
        "$.properties.chainerSettings.masterCommandLineArgs"
    ],
    "history/Chainer__Chainer-GPU-Distributed__job@2018-02-02_53f9afa.json": [
        "$.properties.chainerSettings.masterCommandLineArgs"
    ],
    "history/Horovod__Horovod__job@2017-10-13_e6e64e7.json": [
        "$.properties.outputDirectories[0].createNew",
        "$.properties.outputDirectories[0].type",
    ],
    "history/Horovod__Horovod__job@2017-10-20_722df9e.json": [
        "$.properties.outputDirectories[0].createNew",
        "$.properties.outputDirectories[0].type",
    ],
    # $AZ_BATCHAI_INPUT_DATASET without an input directory DATASET (the data comes from the image).
    "TensorFlow__TensorFlow-GPU-Distributed__job.json": TF_DATASET_WARNINGS,
    "history/TensorFlow__TensorFlow-GPU-Distributed__job@2018-06-18_9943d60.json": TF_DATASET_WARNINGS,
}


def test_the_recipe_corpus_is_what_these_tests_expect():
    names = {relative(path, RECIPES) for path in RECIPE_FILES}
    assert len(names) == 71  # 20 at the top, 51 in history/
    assert set(NOT_JSON) | set(RECIPE_WARNINGS) <= names


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: relative(p, RECIPES))
def test_every_recipe_job_validates_at_its_own_version(path):
    name = relative(path, RECIPES)
    problems = validate_file(path, "job")
    if name in NOT_JSON:
        assert [(p.line, p.column, p.message) for p in problems] == [NOT_JSON[name]]
        return
    assert errors(problems) == []
    assert warnings(problems) == RECIPE_WARNINGS.get(name, [])
    document = load_document(path, "job")
    match = VERSION.search(json.loads(path.read_text(encoding="utf-8")).get("$schema", ""))
    assert document.version == (match.group(1) if match else "2018-05-01")


@pytest.mark.parametrize(
    "path", [p for p in RECIPE_FILES if relative(p, RECIPES) not in NOT_JSON], ids=lambda p: relative(p, RECIPES)
)
def test_every_recipe_job_builds_a_complete_request(path):
    raw = json.loads(path.read_text(encoding="utf-8"))["properties"]
    request, _ = build_job_request(path, cluster_id=CLUSTER_ID, env=ENV)
    properties = request["properties"]
    assert properties["cluster"] == {"id": CLUSTER_ID}
    assert properties["nodeCount"] == raw["nodeCount"]
    (toolkit,) = [key for key in TOOLKIT_SETTINGS if key in raw]
    assert tool_type(properties) == TOOLKIT_SETTINGS[toolkit]
    volumes = properties.get("mountVolumes", {})
    assert "<AZURE_BATCHAI" not in json.dumps(volumes)
    for entry in volumes.get("azureFileShares", []) + volumes.get("azureBlobFileSystems", []):
        assert entry["accountName"] == "mystorage"
        assert entry["credentials"] == {"accountKey": "c2VjcmV0"}


# -- configs from the docs -------------------------------------------------------------------------

DOC_KINDS = {  # complete configs, by kind
    **{
        f"{recipe}__cli-instructions__block02__config.json": "job"
        for recipe in (
            "CNTK__CNTK-GPU-Python-Distributed-Infiniband",
            "CNTK__CNTK-GPU-Python-Distributed",
            "CNTK__CNTK-GPU-Python",
            "Caffe2__Caffe2-GPU-Distributed",
            "Chainer__Chainer-GPU-Distributed-Infiniband",
            "Chainer__Chainer-GPU-Distributed",
            "Horovod__Horovod-Infiniband-Benchmark",
            "Horovod__Horovod-PyTorch",
            "Horovod__Horovod-Tensorflow",
            "Keras__Keras-GPU",
            "PyTorch__PyTorch-GPU-Distributed-Gloo",
            "TensorFlow__TensorFlow-GPU-Distributed",
            "TensorFlow__TensorFlow-GPU",
        )
    },
    "Keras__Keras-GPU__cli-instructions__block03__config.json": "job",
    "doc__using-azure-cli-20__block02__config.json": "cluster",
    "doc__using-azure-cli-20__block03__config.json": "cluster",
    "doc__using-azure-cli-20__block04__config.json": "cluster",
    "doc__using-azure-cli-20__block05__config.json": "cluster",
    "doc__using-azure-cli-20__block09__config.json": "job",
}
# Marked "config" in from-docs/INDEX.md, but the blocks say themselves that the rest is left out
# ("comment": "other settings", "$comment": "the rest of job's parameters"): what is missing is reported.
DOC_PARTIAL_JOBS = [
    "doc__using-azure-cli-20__block08__config.json",
    "doc__using-azure-cli-20__block10__config.json",
    "doc__using-azure-container-registry__block01__config.json",
    "doc__using-azure-container-registry__block02__config.json",
]
DOC_NOT_JSON = {
    "doc__using-azure-cli-20__block11__config-invalid.json": (3, 9, "expected a property name in double quotes"),
    "doc__using-nvidia-dgx-container-registry__block01__config-invalid.json": (
        13,
        9,
        "expected a property name in double quotes (a trailing comma before it?)",
    ),
    "doc__using-nvidia-dgx-container-registry__block03__config-invalid.json": (
        18,
        9,
        "expected a property name in double quotes (a trailing comma before it?)",
    ),
}
DOC_WARNINGS = {
    "doc__using-azure-cli-20__block02__config.json": ["$.properties.comment"],
    "TensorFlow__TensorFlow-GPU-Distributed__cli-instructions__block02__config.json": TF_DATASET_WARNINGS,
    "doc__using-azure-cli-20__block04__config.json": [  # "<ARM ID of Batch AI File Server>" left to fill in
        "$.properties.nodeSetup.mountVolumes.fileServers[0].fileServer.id",
        "$.properties.nodeSetup.mountVolumes.fileServers[1].fileServer.id",
    ],
}


def test_every_doc_config_is_classified():
    names = {path.name for path in DOCS.glob("*.json")}
    fragments = {name for name in names if "config-fragment" in name}
    assert fragments == {
        "doc__using-azure-cli-20__block01__config-fragment.json",
        "doc__using-azure-cli-20__block15__config-fragment.json",
    }
    assert names - fragments == set(DOC_KINDS) | set(DOC_PARTIAL_JOBS) | set(DOC_NOT_JSON)


@pytest.mark.parametrize("name", sorted(DOC_KINDS))
def test_complete_doc_configs_validate_as_their_kind(name):
    problems = validate_file(DOCS / name, DOC_KINDS[name])
    assert errors(problems) == []
    assert warnings(problems) == DOC_WARNINGS.get(name, [])


@pytest.mark.parametrize("name", DOC_PARTIAL_JOBS)
def test_partial_doc_jobs_report_what_is_missing(name):
    problems = validate_file(DOCS / name, "job")
    assert [(path, message.split(" (")[0].split(":")[0]) for path, _, _, message in errors(problems)] == [
        ("$.properties.nodeCount", "required, but missing"),
        ("$.properties.stdOutErrPathPrefix", "required, but missing"),
        ("$.properties", "no toolkit settings"),
    ]
    assert all(problem.line and problem.column for problem in problems)


@pytest.mark.parametrize("name", sorted(DOC_NOT_JSON))
def test_broken_doc_configs_give_clean_errors_with_line_and_column(name):
    (problem,) = validate_file(DOCS / name, "job")
    assert (problem.line, problem.column, problem.message) == DOC_NOT_JSON[name]


def test_doc_cluster_configs_build_with_options(tmp_path):
    options = {
        "vm_size": "STANDARD_NC6",
        "target": 1,
        "user_name": "me",
        "password": "pw",
        "env": ENV,
        "home": tmp_path,
    }
    for name in ("block02", "block03", "block05"):
        request, _ = build_cluster_request(DOCS / f"doc__using-azure-cli-20__{name}__config.json", **options)
        assert request["properties"]["vmSize"] == "STANDARD_NC6"
    # block04 mounts "<ARM ID of Batch AI File Server>": the service would have rejected it.
    with pytest.raises(InvalidConfig) as caught:
        build_cluster_request(DOCS / "doc__using-azure-cli-20__block04__config.json", **options)
    assert [p.json_path for p in caught.value.problems if p.severity == "error"] == [
        "$.properties.nodeSetup.mountVolumes.fileServers[0].fileServer.id",
        "$.properties.nodeSetup.mountVolumes.fileServers[1].fileServer.id",
    ]


# -- files from the wild ---------------------------------------------------------------------------


def wild_kinds() -> dict[str, str]:
    kinds = {}
    for line in (WILD / "SOURCES.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.split("|")]
        if len(cells) > 5 and cells[1].endswith(".json"):
            kinds[cells[1]] = cells[5]
    return kinds


KINDS = wild_kinds() if WILD.is_dir() else {}
ACCEPTED_WITH_OPTIONS = {
    "damienpontifex__BatchAIMnist__cluster__clusterconfig.json": {
        "vm_size": "STANDARD_NC6",
        "target": 2,
        "password": "pw",
    }
}
# Where az (or the Batch AI service, for values az passed through unchecked) failed.
REJECTED = {
    "Azure__batchai_retinanet_horovod_coco__cluster.json": (
        "$.properties.nodeSetup.mountVolumes.azureFileShares[0].accountName",
        "expected a storage account name: 3 to 24 lowercase letters and digits (a placeholder left to fill in?), "
        'got "[your storage account name]"',
    ),
    "Smarker__batchai-workshop__cluster.json": (
        "$.properties.userAccountSettings.adminUserSshPublicKey",
        "Incorrect ssh public key value.",
    ),
    "afcarl__BatchAI_Horovod_Intel_MPSS__Horovod_StockPrediction-Keras_BatchAIconfig.json": (
        "",
        "expected ',' between items (is a comma missing?)",
    ),
    "msalvaris__batchai_retinanet_horovod_coco__training_job@blob-a0451b2b.json": (
        "",
        "a control character (a tab or line break) inside a string; write it as \\t or \\n",
    ),
}
# Mount storage account batchairsa without a key: az looked it up through ARM, batchai asks for it.
NEEDS_KEY = {
    "ZekunZh__BatchAIR__exec_src__job.json",
    "ZekunZh__BatchAIR__job_template.json",
    "ZekunZh__BatchAIR__jobs__job1.json",
}
WILD_WARNINGS = {
    "Azure__batchai_retinanet_horovod_coco__training_job.json": ["$.properties.customToolkitSettings.processCount"],
    "ZekunZh__BatchAIR__exec_src__job@blob-56c2f766.json": ["$.properties.customToolkitSettings.commandLineArgs"],
    "azure-cli__tests-data__file_server.json": ["$.location"],
    **{
        f"azure-cli__tests-latest-data__{name}.json": [
            "$.location",
            "$.properties.nodeSetup.mountVolumes.azureFileShares[0].credentialsInfo",
        ]
        for name in ("auto_scale_cluster_with_azure_files", "cluster_with_azure_files")
    },
    **{
        f"azure-cli__tests-latest-data__{name}.json": [
            "$.location",
            "$.properties.outputDirectories[0].type",
            "$.properties.toolType",
        ]
        for name in ("custom_toolkit_job", "job_referencing_file_systems", "job_with_file_systems")
    },
}


def build(kind, path, tmp_path, **options):
    if kind == "job":
        return build_job_request(path, cluster_id=CLUSTER_ID, **{"env": ENV, **options})
    if kind == "cluster":
        return build_cluster_request(path, home=tmp_path, **{"env": ENV, **options})
    return build_file_server_request(path, home=tmp_path, **options)


def test_the_wild_corpus_is_what_these_tests_expect():
    files = {path.name for path in WILD.glob("*.json")}
    assert files == set(KINDS) and len(files) == 36
    assert set(REJECTED) | NEEDS_KEY | set(WILD_WARNINGS) | set(ACCEPTED_WITH_OPTIONS) <= files
    assert sorted(set(KINDS.values())) == ["cluster", "file-server", "job"]


@pytest.mark.parametrize("name", sorted(KINDS))
def test_wild_files_give_what_az_accepted_or_a_clear_error(name, tmp_path):
    kind, path = KINDS[name], WILD / name
    if name in REJECTED:
        json_path, message = REJECTED[name]
        with pytest.raises(InvalidConfig) as caught:
            build(kind, path, tmp_path, **ACCEPTED_WITH_OPTIONS.get(name, {}))
        first = next(p for p in caught.value.problems if p.severity == "error")
        assert (first.json_path, first.message) == (json_path, message)
        assert first.line and first.column
        return
    if name in NEEDS_KEY:
        with pytest.raises(InvalidConfig) as caught:
            build(kind, path, tmp_path)
        assert caught.value.message == MSG_CONFIGURE_KEY
        assert "--storage-account-name batchairsa --storage-account-key KEY" in caught.value.hint
        request, _ = build(kind, path, tmp_path, env={}, storage_account_name="batchairsa", storage_account_key="a2V5")
        shares = request["properties"]["mountVolumes"]["azureFileShares"]
        assert {share["accountName"] for share in shares} == {"batchairsa"}
        return
    request, found = build(kind, path, tmp_path, **ACCEPTED_WITH_OPTIONS.get(name, {}))
    assert sorted(p.json_path for p in found if p.severity == "warning") == WILD_WARNINGS.get(name, [])
    assert "<AZURE_BATCHAI" not in json.dumps(request)
    if kind == "job":
        assert request["properties"]["cluster"] == {"id": CLUSTER_ID}
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw = raw.get("properties", raw)
    for field in ("nodeCount", "vmSize", "stdOutErrPathPrefix"):
        if field in raw:
            assert request["properties"][field] == raw[field]


def test_what_az_failed_on_in_the_wild_without_options(tmp_path):
    path = WILD / "damienpontifex__BatchAIMnist__cluster__clusterconfig.json"
    with pytest.raises(BatchAIError) as caught:
        build("cluster", path, tmp_path)
    assert caught.value.message == "Please provide admin user password or ssh key."
    with pytest.raises(BatchAIError) as caught:
        build("cluster", path, tmp_path, password="pw")
    assert caught.value.message == "Please provide VM size"
