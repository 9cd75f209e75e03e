"""The submit-level schemas of API 2018-05-01: the file level plus what az filled in before sending.

Each is an overlay: `$ref` to the file-level schema of the same kind, plus the fields the service
required that a file may leave out. batchai validates every request it builds against these, after
patching, so a request that reaches a service or an engine is complete.
"""

from __future__ import annotations

from tests.config.build_file_level import one_of_keys
from tests.config.build_schemas import BASE_URL, DRAFT

VERSION = "2018-05-01"
NAME = "[-A-Za-z0-9_]{1,64}"
SUBSCRIPTION_RG = r"^/subscriptions/[^/]+/resource[Gg]roups/[-\w.()]+/providers/"
BATCHAI = r"[Mm]icrosoft\.[Bb]atch[Aa][Ii]"
CLUSTER_ID = SUBSCRIPTION_RG + BATCHAI + f"/workspaces/{NAME}/clusters/{NAME}$"
FILE_SERVER_ID = SUBSCRIPTION_RG + BATCHAI + f"/workspaces/{NAME}/file[Ss]ervers/{NAME}$"
ARM_ID = SUBSCRIPTION_RG + r"[^/]+/[^/]+/[^/]+(/[^/]+/[^/]+)*$"
STORAGE_ACCOUNT = r"^[a-z0-9]{3,24}$"
CONTAINER = r"^(\$root|[a-z0-9](?!.*--)[-a-z0-9]{1,61}[a-z0-9])$"
BASE64 = r"^[A-Za-z0-9+/]+={0,2}$"
FILE_URL = r"^https?://[^/\s<>\[\]]+/[^\s<>\[\]]+$"


def resource_id(pattern: str, what: str, example: str) -> dict:
    return {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "string", "pattern": pattern, "errorMessage": f"{what} such as {example}"}},
    }


def required(field: str, message: str) -> dict:
    return {"required": [field], "errorMessage": message}


def admin_account() -> dict:
    return {
        "allOf": [
            required("adminUserName", "Please provide admin user name."),
            {
                "anyOf": [{"required": ["adminUserSshPublicKey"]}, {"required": ["adminUserPassword"]}],
                "errorMessage": "Please provide admin user password or ssh key.",
            },
        ],
    }


def mount_defs() -> dict:
    storage_name = {
        "type": "string",
        "pattern": STORAGE_ACCOUNT,
        "errorMessage": "a storage account name: 3 to 24 lowercase letters and digits (a placeholder left to fill in?)",
    }
    return {
        "MountVolumes": {
            "properties": {
                "azureFileShares": {"items": {"$ref": "#/$defs/AzureFileShareReference"}},
                "azureBlobFileSystems": {"items": {"$ref": "#/$defs/AzureBlobFileSystemReference"}},
                "fileServers": {
                    "items": {
                        "properties": {
                            "fileServer": resource_id(
                                FILE_SERVER_ID,
                                "a file server resource id",
                                "/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.BatchAI/workspaces/<ws>/"
                                "fileServers/<name>",
                            )
                        }
                    }
                },
            },
        },
        "AzureFileShareReference": {
            "required": ["accountName", "credentials"],
            "properties": {
                "accountName": storage_name,
                "azureFileUrl": {
                    "type": "string",
                    "pattern": FILE_URL,
                    "errorMessage": "a URL such as https://<account>.file.core.windows.net/<share>",
                },
                "credentials": {"$ref": "#/$defs/AzureStorageCredentialsInfo"},
            },
        },
        "AzureBlobFileSystemReference": {
            "required": ["accountName", "credentials"],
            "properties": {
                "accountName": storage_name,
                "containerName": {
                    "type": "string",
                    "pattern": CONTAINER,
                    "errorMessage": "a container name: 3 to 63 lowercase letters, digits and -",
                },
                "credentials": {"$ref": "#/$defs/AzureStorageCredentialsInfo"},
            },
        },
        "AzureStorageCredentialsInfo": {
            "allOf": [
                one_of_keys(
                    ["accountKey", "accountKeySecretReference"], "give either accountKey or accountKeySecretReference"
                )
            ],
            "properties": {
                "accountKey": {"type": "string", "pattern": BASE64, "errorMessage": "a storage account key (base64)"}
            },
        },
    }


def overlay(kind: str, description: str, properties: dict, defs: dict) -> dict:
    return {
        "$schema": DRAFT,
        "$id": f"{BASE_URL}/{VERSION}/{kind}.submit.json",
        "title": f"Batch AI {kind} request, API {VERSION}, as batchai submits it",
        "description": description,
        "$ref": f"{kind}.json",
        "required": ["properties"],
        "properties": {"properties": properties},
        "$defs": defs,
    }


def submit_schemas() -> dict[str, dict]:
    job = overlay(
        "job",
        "A job request after batchai filled in what az filled in (the cluster from -c, storage account "
        "names and keys, the mounts of --nfs/--afs-name/--bfs-name): everything the service required.",
        {
            "allOf": [
                required("cluster", "Please provide cluster information via command line or configuration file.")
            ],
            "properties": {
                "cluster": resource_id(
                    CLUSTER_ID,
                    "a cluster resource id",
                    "/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.BatchAI/workspaces/<ws>/"
                    "clusters/<name>",
                ),
                "mountVolumes": {"$ref": "#/$defs/MountVolumes"},
            },
        },
        mount_defs(),
    )
    cluster = overlay(
        "cluster",
        "A cluster request after batchai filled in what az filled in (VM size, admin account, scale settings, "
        "image, mounts, setup task from the options): everything the service required.",
        {
            "allOf": [
                required("vmSize", "Please provide VM size"),
                required("userAccountSettings", "Please provide admin user password or ssh key."),
                required(
                    "scaleSettings",
                    "Please provide scale setting for the cluster via command line or configuration file",
                ),
            ],
            "properties": {
                "userAccountSettings": {"$ref": "#/$defs/UserAccountSettings"},
                "nodeSetup": {"properties": {"mountVolumes": {"$ref": "#/$defs/MountVolumes"}}},
                "subnet": resource_id(
                    ARM_ID,
                    "a subnet resource id",
                    "/subscriptions/<sub>/resourceGroups/<rg>/"
                    "providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>",
                ),
                "virtualMachineConfiguration": {
                    "properties": {
                        "imageReference": {
                            "properties": {
                                "virtualMachineImageId": {
                                    "type": "string",
                                    "pattern": ARM_ID,
                                    "errorMessage": "a custom image resource id such as /subscriptions/<sub>/"
                                    "resourceGroups/<rg>/providers/Microsoft.Compute/images/<image>",
                                }
                            }
                        }
                    }
                },
            },
        },
        {"UserAccountSettings": admin_account(), **mount_defs()},
    )
    file_server = overlay(
        "file-server",
        "A file server request after batchai filled in what az filled in (VM size, admin account, data disks "
        "from the options): everything the service required.",
        {
            "allOf": [
                required("vmSize", "Please provide VM size."),
                required("dataDisks", "Please provide disk size in Gb."),
                required("sshConfiguration", "Please provide admin user password or ssh key."),
            ],
            "properties": {
                "sshConfiguration": {
                    "allOf": [required("userAccountSettings", "Please provide admin user password or ssh key.")],
                    "properties": {"userAccountSettings": {"$ref": "#/$defs/UserAccountSettings"}},
                },
                "dataDisks": {
                    "allOf": [
                        required("diskSizeInGB", "Please provide disk size in Gb."),
                        required("diskCount", "Please provide number of data disks (at least one disk is required)."),
                        required("storageAccountType", "Please provide storage account type (storage sku)."),
                    ]
                },
                "subnet": resource_id(
                    ARM_ID,
                    "a subnet resource id",
                    "/subscriptions/<sub>/resourceGroups/<rg>/"
                    "providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>",
                ),
            },
        },
        {"UserAccountSettings": admin_account()},
    )
    return {"job": job, "cluster": cluster, "file-server": file_server}
