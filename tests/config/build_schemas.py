"""Build schemas/ from the Batch AI 2018-05-01 swagger: `python -m tests.config.build_schemas`.

The schemas are generated once and checked in, so the wheel needs neither this script nor the
swagger; tests/config/test_schemas.py rebuilds them and fails when the checked-in files drift.

Three steps:
1. every create-body definition of the swagger, faithfully: properties, types, enums, defaults,
   titles, descriptions, required fields (read-only fields left out);
2. the rules the swagger states only in prose (exactly one toolkit, manual or autoScale, value or
   secret reference, ...) and the file level: what az filled in before sending becomes optional;
3. the older API versions, as edits of the 2018-05-01 definitions (build_old_schemas.py), and the
   submit level, as overlays that add back what az filled in (build_submit_schemas.py).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SWAGGER = REPO.parent / "shared" / "reference" / "batchai-2018-05-01.swagger.json"
SCHEMAS = REPO / "schemas"
BASE_URL = "https://batchai.dev/schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

ROOTS = {"job": "JobBaseProperties", "cluster": "ClusterBaseProperties", "file-server": "FileServerBaseProperties"}
TITLES = {
    "job": "Batch AI job file (job.json)",
    "cluster": "Batch AI cluster file (cluster.json)",
    "file-server": "Batch AI file server file",
}
TOOLKITS = [
    "cntkSettings",
    "pyTorchSettings",
    "tensorFlowSettings",
    "caffeSettings",
    "caffe2Settings",
    "chainerSettings",
    "customToolkitSettings",
    "customMpiSettings",
    "horovodSettings",
]

INT32 = {"minimum": -(2**31), "maximum": 2**31 - 1}
PLACEHOLDER_ACCOUNT = "<AZURE_BATCHAI_STORAGE_ACCOUNT>"
PLACEHOLDER_KEY = "<AZURE_BATCHAI_STORAGE_KEY>"

# Patterns are written in the subset both ECMA-262 (editors) and Python's re understand.
RELATIVE_PATH = r"^(?!/)(?!\.\.(/|$))(?!.*/\.\.(/|$)).+$"
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
DIRECTORY_ID = r"^[A-Za-z0-9_]+$"
FILE_MODE = r"^0?[0-7]{3}$"
DURATION = (
    r"^(\d+\.)?\d{1,2}:\d{2}:\d{2}(\.\d{1,7})?$"
    r"|^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"
)
SHM_SIZE = r"^\d+(\.\d+)? ?[kKmMgGtTpP]?[iI]?[bB]?$"
FILE_URL = r"^https?://[^/]+/.+$"
CNTK_LANGUAGE = r"^([Bb][Rr][Aa][Ii][Nn][Ss][Cc][Rr][Ii][Pp][Tt]|[Pp][Yy][Tt][Hh][Oo][Nn])$"
BRAINSCRIPT = r"^[Bb][Rr][Aa][Ii][Nn][Ss][Cc][Rr][Ii][Pp][Tt]$"
PYTHON = r"^[Pp][Yy][Tt][Hh][Oo][Nn]$"
BACKEND = r"^([Tt][Cc][Pp]|[Gg][Ll][Oo][Oo]|[Mm][Pp][Ii])$"


# -- step 1: the swagger, faithfully ----------------------------------------------------------------


def convert_property(prop: dict) -> dict:
    out: dict = {}
    for key in ("title", "description"):
        if key in prop:
            out[key] = prop[key]
    if "$ref" in prop:
        out["$ref"] = "#/$defs/" + prop["$ref"].rsplit("/", 1)[1]
        if "default" in prop:
            out["default"] = prop["default"]
        return out
    kind = prop.get("type", "object")
    out["type"] = kind
    if "enum" in prop:
        out["enum"] = list(prop["enum"])
    if "default" in prop:
        out["default"] = prop["default"]
    if kind == "integer" and prop.get("format") == "int32":
        out.update(INT32)
    if kind == "array":
        out["items"] = convert_property(prop["items"])
    if kind == "object" and "properties" in prop:
        out.update(convert_object(prop))
    return out


def convert_object(definition: dict) -> dict:
    properties = {
        name: convert_property(prop)
        for name, prop in definition.get("properties", {}).items()
        if not prop.get("readOnly")
    }
    out: dict = {"type": "object", "properties": properties}
    required = [name for name in definition.get("required", []) if name in properties]
    if required:
        out["required"] = required
    # Closed objects: an editor flags unknown keys, and batchai turns them into warnings.
    out["additionalProperties"] = False
    return out


def convert_definition(definition: dict) -> dict:
    if definition.get("type") == "string":
        out = {key: definition[key] for key in ("title", "description") if key in definition}
        out.update({"type": "string", "enum": list(definition["enum"])})
        if "default" in definition:
            out["default"] = definition["default"]
        return out
    out = {key: definition[key] for key in ("title", "description") if key in definition}
    out.update(convert_object(definition))
    return out


def swagger_definitions(swagger: dict) -> dict[str, dict]:
    defs = swagger["definitions"]
    wanted: set[str] = set()
    pending = list(ROOTS.values())
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending.extend(_refs(defs[name]))
    return {name: convert_definition(defs[name]) for name in sorted(wanted, key=str.lower)}


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


# -- step 2: rules from the prose, and the file level ------------------------------------------------


def one_of_keys(keys: list[str], message: str) -> dict:
    return {"oneOf": [{"required": [key]} for key in keys], "errorMessage": message}


def not_both(first: str, second: str) -> dict:
    return {"not": {"required": [first, second]}, "errorMessage": f"give either {first} or {second}, not both"}


def rule(definition: dict, constraint: dict) -> None:
    definition.setdefault("allOf", []).append(constraint)


def prop(defs: dict, path: str) -> dict:
    """defs['A'].properties.b.properties.c for 'A.b.c'."""
    head, *rest = path.split(".")
    node = defs[head]
    for name in rest:
        node = node["properties"][name]
    return node


def constrain(defs: dict, path: str, **constraints) -> None:
    prop(defs, path).update(constraints)


def make_optional(defs: dict, name: str, *fields: str) -> None:
    definition = defs[name]
    definition["required"] = [field for field in definition.get("required", []) if field not in fields]
    if not definition["required"]:
        del definition["required"]


def file_level(defs: dict[str, dict]) -> dict[str, dict]:
    defs = copy.deepcopy(defs)

    # Names and paths the service turns into environment variables and mount points.
    for name in ("EnvironmentVariable", "EnvironmentVariableWithSecretValue"):
        constrain(
            defs,
            f"{name}.name",
            pattern=ENV_NAME,
            errorMessage="an environment variable name: letters, digits and _, not starting with a digit",
        )
    for name, var in (("InputDirectory", "AZ_BATCHAI_INPUT_<id>"), ("OutputDirectory", "AZ_BATCHAI_OUTPUT_<id>")):
        constrain(
            defs,
            f"{name}.id",
            pattern=DIRECTORY_ID,
            errorMessage=f"letters, digits and _ only (the id becomes part of the variable {var})",
        )
    for name in (
        "AzureFileShareReference",
        "AzureBlobFileSystemReference",
        "FileServerReference",
        "UnmanagedFileSystemReference",
    ):
        constrain(
            defs,
            f"{name}.relativeMountPath",
            pattern=RELATIVE_PATH,
            errorMessage='a relative path under the mount root, such as "afs" (no leading / and no ..)',
        )
    for field in ("fileMode", "directoryMode"):
        constrain(
            defs,
            f"AzureFileShareReference.{field}",
            pattern=FILE_MODE,
            errorMessage='an octal file mode such as "0777"',
        )
    constrain(
        defs,
        "AzureFileShareReference.azureFileUrl",
        pattern=FILE_URL,
        errorMessage="a URL such as https://<account>.file.core.windows.net/<share>",
    )
    constrain(
        defs,
        "JobBaseProperties.constraints.maxWallClockTime",
        pattern=DURATION,
        errorMessage='a duration such as "7.00:00:00" (days.hours:minutes:seconds) or "P7D"',
    )
    constrain(defs, "ContainerSettings.shmSize", pattern=SHM_SIZE, errorMessage='a size such as "16gb"')
    constrain(defs, "CNTKsettings.languageType", pattern=CNTK_LANGUAGE, errorMessage="BrainScript or Python")
    constrain(defs, "PyTorchSettings.communicationBackend", pattern=BACKEND, errorMessage="TCP, Gloo or MPI")
    constrain(defs, "SshConfiguration.publicIPsToAllow", maxItems=400)

    # Counts: numbers are numbers, and a count below these makes no sense.
    constrain(defs, "JobBaseProperties.nodeCount", minimum=1)
    for path in (
        "CNTKsettings.processCount",
        "PyTorchSettings.processCount",
        "CaffeSettings.processCount",
        "ChainerSettings.processCount",
        "CustomMpiSettings.processCount",
        "HorovodSettings.processCount",
        "TensorFlowSettings.workerCount",
        "DataDisks.diskSizeInGB",
        "DataDisks.diskCount",
    ):
        constrain(defs, path, minimum=1)
    for path in (
        "TensorFlowSettings.parameterServerCount",
        "ManualScaleSettings.targetNodeCount",
        "AutoScaleSettings.minimumNodeCount",
        "AutoScaleSettings.maximumNodeCount",
        "AutoScaleSettings.initialNodeCount",
    ):
        constrain(defs, path, minimum=0)

    # Required strings must say something.
    for definition in defs.values():
        for field in definition.get("required", []):
            target = definition["properties"][field]
            if target.get("type") == "string":
                target["minLength"] = 1
    # az treated an empty accountName as absent and derived it from azureFileUrl.
    del prop(defs, "AzureFileShareReference.accountName")["minLength"]
    constrain(defs, "ClusterBaseProperties.vmSize", minLength=1)
    constrain(defs, "FileServerBaseProperties.vmSize", minLength=1)

    # Rules the swagger gives only in descriptions.
    rule(defs["JobBaseProperties"], one_of_keys(TOOLKITS, "give exactly one toolkit settings object"))
    rule(defs["ScaleSettings"], one_of_keys(["manual", "autoScale"], "give either manual or autoScale, not both"))
    rule(
        defs["EnvironmentVariableWithSecretValue"],
        one_of_keys(["value", "valueSecretReference"], "give either value or valueSecretReference, not both"),
    )
    rule(
        defs["PrivateRegistryCredentials"],
        one_of_keys(["password", "passwordSecretReference"], "give either password or passwordSecretReference"),
    )
    rule(
        defs["AppInsightsReference"],
        one_of_keys(
            ["instrumentationKey", "instrumentationKeySecretReference"],
            "give either instrumentationKey or instrumentationKeySecretReference",
        ),
    )
    rule(defs["AzureStorageCredentialsInfo"], not_both("accountKey", "accountKeySecretReference"))
    rule(defs["CaffeSettings"], not_both("configFilePath", "pythonScriptFilePath"))
    defs["CaffeSettings"]["dependentRequired"] = {"pythonInterpreterPath": ["pythonScriptFilePath"]}
    rule(defs["CNTKsettings"], not_both("configFilePath", "pythonScriptFilePath"))
    rule(
        defs["CNTKsettings"],
        {
            "if": {"required": ["languageType"], "properties": {"languageType": {"pattern": BRAINSCRIPT}}},
            "then": {
                "not": {"anyOf": [{"required": ["pythonScriptFilePath"]}, {"required": ["pythonInterpreterPath"]}]},
                "errorMessage": "pythonScriptFilePath and pythonInterpreterPath are for languageType Python",
            },
        },
    )
    rule(
        defs["CNTKsettings"],
        {
            "if": {"required": ["languageType"], "properties": {"languageType": {"pattern": PYTHON}}},
            "then": {
                "not": {"required": ["configFilePath"]},
                "errorMessage": "configFilePath is for languageType BrainScript",
            },
        },
    )

    # What az filled in before sending (batchai does the same): optional in the file.
    make_optional(defs, "JobBaseProperties", "cluster")
    make_optional(defs, "AzureFileShareReference", "accountName", "credentials")
    make_optional(defs, "AzureBlobFileSystemReference", "accountName", "credentials")
    rule(
        defs["AzureBlobFileSystemReference"],
        {
            "required": ["accountName"],
            "errorMessage": "Ill-formed Azure Blob File System reference in the configuration file - "
            "no account name provided.",
        },
    )
    make_optional(defs, "ClusterBaseProperties", "vmSize", "userAccountSettings")
    make_optional(defs, "UserAccountSettings", "adminUserName")
    make_optional(defs, "FileServerBaseProperties", "vmSize", "sshConfiguration", "dataDisks")
    make_optional(defs, "SshConfiguration", "userAccountSettings")
    make_optional(defs, "DataDisks", "diskSizeInGB", "diskCount", "storageAccountType")
    for name in ("AzureFileShareReference", "AzureBlobFileSystemReference"):
        prop(defs, f"{name}.accountName")["description"] += (
            f" May be left out of the file or be the placeholder {PLACEHOLDER_ACCOUNT}: batchai fills it in"
            " as az did (from azureFileUrl, --storage-account-name or AZURE_BATCHAI_STORAGE_ACCOUNT)."
        )
        prop(defs, f"{name}.credentials")["description"] += (
            " May be left out of the file: batchai fills in the key from --storage-account-key or"
            f" AZURE_BATCHAI_STORAGE_KEY, as az did; accountKey may be the placeholder {PLACEHOLDER_KEY}."
        )
    prop(defs, "JobBaseProperties.cluster")["description"] += " Usually left out: `job create -c` gives it."

    defs["ClusterBaseProperties"]["properties"]["engine"] = {"$ref": "#/$defs/Engine"}
    defs["Engine"] = {
        "title": "Engine (batchai extension).",
        "description": "A batchai extension that az and the Batch AI service ignore: where the cluster's jobs "
        "run. local (the default) runs them as processes on this machine; slurm submits them "
        "with sbatch/srun to a Slurm cluster, in the given partition and account.",
        "type": "object",
        "properties": {
            "type": {
                "type": "string",
                "enum": ["local", "slurm"],
                "default": "local",
                "description": "local or slurm.",
            },
            "partition": {"type": "string", "minLength": 1, "description": "Slurm partition (slurm only)."},
            "account": {"type": "string", "minLength": 1, "description": "Slurm account (slurm only)."},
        },
        "additionalProperties": False,
    }
    return defs


# -- step 3: one self-contained schema per kind ---------------------------------------------------


EDITOR_KEYS = {
    "$schema": {
        "type": "string",
        "description": "The JSON Schema of this file, for editors; batchai reads the "
        "API version (2017-09-01-preview, 2018-03-01 or 2018-05-01) from it.",
    },
    "$comment": {"description": "A comment; ignored."},
}


def kind_schema(
    defs: dict[str, dict], kind: str, version: str, description: str, top_level: dict | None = None
) -> dict:
    root = ROOTS[kind]
    used = _closure(defs, root)
    used_defs = {name: copy.deepcopy(defs[name]) for name in sorted(used, key=str.lower)}
    base = used_defs[root]
    base["properties"] = {**EDITOR_KEYS, **base["properties"]}
    return {
        "$schema": DRAFT,
        "$id": f"{BASE_URL}/{version}/{kind}.json",
        "title": f"{TITLES[kind]}, API {version}",
        "description": description,
        "type": "object",
        # The {"properties": {...}} form, or the same fields at the top level (az accepted both).
        "if": {"required": ["properties"]},
        "then": {
            "properties": {**EDITOR_KEYS, **(top_level or {}), "properties": {"$ref": f"#/$defs/{root}"}},
            "additionalProperties": False,
        },
        "else": {"$ref": f"#/$defs/{root}"},
        "$defs": used_defs,
    }


def _closure(defs: dict, root: str) -> set[str]:
    seen: set[str] = set()
    pending = [root]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(_refs(defs[name]))
    return seen


FILE_LEVEL_DESCRIPTION = (
    "What you write in a {kind} file for batchai (and for az batchai before it), API version {version}. "
    "This is the file level: fields that az filled in before sending ({filled}) may be left out, and the "
    "storage placeholders <AZURE_BATCHAI_STORAGE_ACCOUNT> and <AZURE_BATCHAI_STORAGE_KEY> are allowed. "
    "Unknown keys are reported as warnings (az silently dropped them). Check a file with "
    "`batchai validate {kind} FILE`."
)
FILLED = {
    "job": "cluster from -c, mount accountName from azureFileUrl, credentials from the storage options",
    "cluster": "vmSize, userAccountSettings and scaleSettings from the options, mount accountName and credentials",
    "file-server": "vmSize, the admin account and the data disks from the options",
}


def build_all(swagger: dict) -> dict[str, dict]:
    """Relative path under schemas/ -> schema document."""
    from tests.config.build_old_schemas import OLD_TOP_LEVEL, OLD_VERSIONS, old_definitions
    from tests.config.build_submit_schemas import submit_schemas

    current = file_level(swagger_definitions(swagger))
    out: dict[str, dict] = {}
    for version, defs in [("2018-05-01", current)] + [(v, old_definitions(current, v)) for v in OLD_VERSIONS]:
        top_level = OLD_TOP_LEVEL if version in OLD_VERSIONS else None
        for kind in ROOTS:
            text = FILE_LEVEL_DESCRIPTION.format(kind=kind, version=version, filled=FILLED[kind])
            out[f"{version}/{kind}.json"] = kind_schema(defs, kind, version, text, top_level)
    for kind, schema in submit_schemas().items():
        out[f"2018-05-01/{kind}.submit.json"] = schema
    return out


def dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    swagger = json.loads(SWAGGER.read_text(encoding="utf-8"))
    for relative, schema in build_all(swagger).items():
        target = SCHEMAS / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dump(schema), encoding="utf-8")
        print(f"wrote schemas/{relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
