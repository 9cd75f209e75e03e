"""The file-level schemas of API 2017-09-01-preview and 2018-03-01, as edits of 2018-05-01's.

Written from the official schemas of those versions (shared/reference/batchai-schemas) and the
Azure Resource Manager schemas they point to. Where the official schemas were wrong, these follow
what the service and az accepted; schemas/README.md lists each difference.
"""

from __future__ import annotations

import copy

from tests.config.build_file_level import one_of_keys, rule

OLD_VERSIONS = ("2018-03-01", "2017-09-01-preview")

LOCATION = {
    "type": "string",
    "description": "The region of the resource. API 2018-05-01 dropped it (the workspace decides); batchai "
    "ignores it when it upgrades the file.",
}
OLD_TOP_LEVEL = {"location": LOCATION}

OLD_JOB_FIELDS = {
    "experimentName": {
        "type": "string",
        "description": "The experiment the job belongs to. In API 2018-05-01 experiments are resources: give "
        "`job create -e <name>`; batchai drops this field when it upgrades the file.",
    },
    "priority": {
        "type": "integer",
        "minimum": -1000,
        "maximum": 1000,
        "default": 0,
        "description": "Priority of the job, from -1000 (lowest) to 1000 (highest). API 2018-05-01 replaced it "
        "with schedulingPriority: batchai maps a negative priority to low, 0 to normal and a "
        "positive one to high.",
    },
    "location": LOCATION,
}
OUTPUT_DIRECTORY_FIELDS = {
    "type": {
        "type": "string",
        "enum": ["model", "logs", "summary", "custom"],
        "description": "Kind of output. Dropped in API 2018-05-01 (every output directory is alike).",
    },
    "createNew": {
        "type": "boolean",
        "default": True,
        "description": "Whether the service creates the directory. Dropped in API 2018-05-01, which always creates it.",
    },
}
RUN_ELEVATED = {
    "type": "boolean",
    "default": False,
    "description": "Run the setup task as root. Dropped in API 2018-05-01, where setup tasks always run as root.",
}


def remove(definition: dict, *fields: str) -> None:
    for field in fields:
        definition["properties"].pop(field, None)
    if "required" in definition:
        definition["required"] = [field for field in definition["required"] if field not in fields]
        if not definition["required"]:
            del definition["required"]


def set_toolkits(defs: dict, toolkits: list[str]) -> None:
    job = defs["JobBaseProperties"]
    job["allOf"] = [item for item in job["allOf"] if "oneOf" not in item]
    job["allOf"].insert(0, one_of_keys(toolkits, "give exactly one toolkit settings object"))


def old_definitions(current: dict[str, dict], version: str) -> dict[str, dict]:
    defs = copy.deepcopy(current)
    del defs["Engine"], defs["LocalFolderReference"]
    remove(defs["ClusterBaseProperties"], "engine")
    remove(defs["MountVolumes"], "localFolders")
    for root in ("JobBaseProperties", "ClusterBaseProperties", "FileServerBaseProperties"):
        defs[root]["properties"]["location"] = copy.deepcopy(LOCATION)

    job = defs["JobBaseProperties"]
    remove(job, "schedulingPriority", "customMpiSettings", "horovodSettings")
    for name in ("CustomMpiSettings", "HorovodSettings"):
        del defs[name]
    job["properties"].update(copy.deepcopy({k: v for k, v in OLD_JOB_FIELDS.items() if k != "location"}))
    defs["OutputDirectory"]["properties"].update(copy.deepcopy(OUTPUT_DIRECTORY_FIELDS))
    remove(defs["ContainerSettings"], "shmSize")
    defs["SetupTask"]["properties"]["runElevated"] = copy.deepcopy(RUN_ELEVATED)
    defs["DeallocationOption"]["enum"].append("unknown")

    if version == "2018-03-01":
        set_toolkits(
            defs,
            [
                "cntkSettings",
                "pyTorchSettings",
                "tensorFlowSettings",
                "caffeSettings",
                "caffe2Settings",
                "chainerSettings",
                "customToolkitSettings",
            ],
        )
        return defs

    # 2017-09-01-preview: no job-level mounts, secrets or PyTorch; environment values were optional.
    remove(job, "mountVolumes", "secrets", "pyTorchSettings")
    del defs["PyTorchSettings"]
    set_toolkits(
        defs,
        [
            "cntkSettings",
            "tensorFlowSettings",
            "caffeSettings",
            "caffe2Settings",
            "chainerSettings",
            "customToolkitSettings",
        ],
    )
    defs["CustomToolkitSettings"]["required"] = ["commandLine"]
    defs["CustomToolkitSettings"]["properties"]["commandLine"]["minLength"] = 1
    remove(defs["EnvironmentVariable"], "value")
    defs["EnvironmentVariable"]["properties"]["value"] = {"type": "string", "description": "The value."}
    remove(defs["SetupTask"], "secrets")
    remove(defs["NodeSetup"], "performanceCountersSettings")
    for name in ("PerformanceCountersSettings", "AppInsightsReference"):
        del defs[name]
    remove(defs["ImageReference"], "virtualMachineImageId")
    remove(defs["DataDisks"], "cachingType")
    # The first 2017-09-01-preview SDK named the storage credentials credentialsInfo (az's own test
    # data still uses it); the key could also be a Key Vault secret URL.
    defs["CredentialsInfo"] = {
        "title": "Credentials info (early 2017-09-01-preview name of credentials).",
        "description": "Azure storage credentials, under the name the first 2017-09-01-preview SDK used. "
        "batchai renames it to credentials when it upgrades the file.",
        "type": "object",
        "properties": {
            "accountKey": {"type": "string", "description": "Storage account key."},
            "accountKeySecretUrl": {
                "type": "string",
                "description": "URL of a Key Vault secret holding the storage account key.",
            },
        },
        "additionalProperties": False,
    }
    rule(
        defs["CredentialsInfo"],
        {
            "not": {"required": ["accountKey", "accountKeySecretUrl"]},
            "errorMessage": "give either accountKey or accountKeySecretUrl, not both",
        },
    )
    for name in ("AzureFileShareReference", "AzureBlobFileSystemReference"):
        defs[name]["properties"]["credentialsInfo"] = {"$ref": "#/$defs/CredentialsInfo"}
        rule(
            defs[name],
            {
                "not": {"required": ["credentials", "credentialsInfo"]},
                "errorMessage": "give either credentials or credentialsInfo, not both",
            },
        )
    return defs
