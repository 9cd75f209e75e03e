"""Step 2 of build_schemas: the rules the 2018-05-01 swagger states only in prose, and the file level.

The file level is what a person writes: fields az filled in before sending (cluster, a mount's
accountName and credentials, and for clusters and file servers whatever an option can give) are
optional, and storage placeholders are allowed.
"""

from __future__ import annotations

import copy

from tests.config.build_schemas import TOOLKITS

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

    defs["MountVolumes"]["properties"]["localFolders"] = {
        "type": "array",
        "items": {"$ref": "#/$defs/LocalFolderReference"},
        "description": "A batchai extension that az and the Batch AI service ignore: folders on the node's "
        "machine, linked at $AZ_BATCHAI_JOB_MOUNT_ROOT/<relativeMountPath> (job) or "
        "$AZ_BATCHAI_MOUNT_ROOT/<relativeMountPath> (cluster).",
    }
    defs["LocalFolderReference"] = {
        "title": "Local folder mount (batchai extension).",
        "description": "A folder on the machine the nodes run on, linked into the mount root.",
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "description": "The folder: absolute, or relative to the job file's folder.",
            },
            "relativeMountPath": {
                "type": "string",
                "minLength": 1,
                "description": "Where it appears under the mount root.",
            },
        },
        "required": ["path", "relativeMountPath"],
        "additionalProperties": False,
    }
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
