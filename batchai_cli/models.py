"""The az shape of clusters and jobs: every property the SDK model has, null when unset, and the
secrets the service never returned (storage keys, passwords, secret values) blanked out.

az printed SDK models, so a property that was not set still appears as null. `present()` gives
the same shape from a request body, keeping extension keys (e.g. batchai's `engine`) as they are.
"""

from __future__ import annotations

# A spec maps each property to None (a plain value), a nested spec (an object) or a one-item
# list holding a spec (a list of objects).
_CREDENTIALS = {"accountKey": None, "accountKeySecretReference": None}
_MOUNT_VOLUMES = {
    "azureBlobFileSystems": [
        {
            "accountName": None,
            "containerName": None,
            "credentials": _CREDENTIALS,
            "mountOptions": None,
            "relativeMountPath": None,
        }
    ],
    "azureFileShares": [
        {
            "accountName": None,
            "azureFileUrl": None,
            "credentials": _CREDENTIALS,
            "directoryMode": None,
            "fileMode": None,
            "relativeMountPath": None,
        }
    ],
    "fileServers": [{"fileServer": None, "mountOptions": None, "relativeMountPath": None, "sourceDirectory": None}],
    "unmanagedFileSystems": [{"mountCommand": None, "relativeMountPath": None}],
}
_ENV = [{"name": None, "value": None}]
_SECRETS = [{"name": None, "value": None, "valueSecretReference": None}]
_PYTHON = {"commandLineArgs": None, "processCount": None, "pythonInterpreterPath": None, "pythonScriptFilePath": None}

CLUSTER = {
    "allocationState": None,
    "allocationStateTransitionTime": None,
    "creationTime": None,
    "currentNodeCount": None,
    "errors": None,
    "id": None,
    "name": None,
    "nodeSetup": {
        "mountVolumes": _MOUNT_VOLUMES,
        "performanceCountersSettings": None,
        "setupTask": {
            "commandLine": None,
            "environmentVariables": _ENV,
            "secrets": _SECRETS,
            "stdOutErrPathPrefix": None,
            "stdOutErrPathSuffix": None,
        },
    },
    "nodeStateCounts": {
        "idleNodeCount": None,
        "leavingNodeCount": None,
        "preparingNodeCount": None,
        "runningNodeCount": None,
        "unusableNodeCount": None,
    },
    "provisioningState": None,
    "provisioningStateTransitionTime": None,
    "scaleSettings": {
        "autoScale": {"initialNodeCount": None, "maximumNodeCount": None, "minimumNodeCount": None},
        "manual": {"nodeDeallocationOption": None, "targetNodeCount": None},
    },
    "subnet": None,
    "type": None,
    "userAccountSettings": {"adminUserName": None, "adminUserPassword": None, "adminUserSshPublicKey": None},
    "virtualMachineConfiguration": {
        "imageReference": {
            "offer": None,
            "publisher": None,
            "sku": None,
            "version": None,
            "virtualMachineImageId": None,
        },
    },
    "vmPriority": None,
    "vmSize": None,
}

JOB = {
    "caffe2Settings": {"commandLineArgs": None, "pythonInterpreterPath": None, "pythonScriptFilePath": None},
    "caffeSettings": {**_PYTHON, "configFilePath": None},
    "chainerSettings": _PYTHON,
    "cluster": None,
    "cntkSettings": {**_PYTHON, "configFilePath": None, "languageType": None},
    "constraints": {"maxWallClockTime": None},
    "containerSettings": {
        "imageSourceRegistry": {
            "credentials": {"password": None, "passwordSecretReference": None, "username": None},
            "image": None,
            "serverUrl": None,
        },
        "shmSize": None,
    },
    "creationTime": None,
    "customMpiSettings": {"commandLine": None, "processCount": None},
    "customToolkitSettings": {"commandLine": None},
    "environmentVariables": _ENV,
    "executionInfo": {"endTime": None, "errors": None, "exitCode": None, "startTime": None},
    "executionState": None,
    "executionStateTransitionTime": None,
    "horovodSettings": _PYTHON,
    "id": None,
    "inputDirectories": [{"id": None, "path": None}],
    "jobOutputDirectoryPathSegment": None,
    "jobPreparation": {"commandLine": None},
    "mountVolumes": _MOUNT_VOLUMES,
    "name": None,
    "nodeCount": None,
    "outputDirectories": [{"id": None, "pathPrefix": None, "pathSuffix": None}],
    "provisioningState": None,
    "provisioningStateTransitionTime": None,
    "pyTorchSettings": {**_PYTHON, "communicationBackend": None},
    "schedulingPriority": None,
    "secrets": _SECRETS,
    "stdOutErrPathPrefix": None,
    "tensorFlowSettings": {
        "masterCommandLineArgs": None,
        "parameterServerCommandLineArgs": None,
        "parameterServerCount": None,
        "pythonInterpreterPath": None,
        "pythonScriptFilePath": None,
        "workerCommandLineArgs": None,
        "workerCount": None,
    },
    "toolType": None,
    "type": None,
}

# Values the service never returned, wherever they appear.
# Why a job stopped before its end, by error code: (before it started, while it ran). The code a
# terminate records (services) is the code the runner reports (engines).
STOP_MESSAGES = {
    "JobTerminated": ("The job was terminated before it started.", "The job was terminated by the user."),
    "ClusterDeleted": ("The cluster the job was queued on was deleted.", "The cluster the job ran on was deleted."),
}


def stop_error(code: str | None, *, started: bool) -> dict:
    """The error of a job stopped by a terminate (code from STOP_MESSAGES; unknown or None: JobTerminated)."""
    code = code if code in STOP_MESSAGES else "JobTerminated"
    return batchai_error(code, STOP_MESSAGES[code][1 if started else 0])


_SECRET_KEYS = {"accountKey", "adminUserPassword", "password", "instrumentationKey"}


def shape(value: object, spec: object) -> object:
    """`value` with every property of `spec` present (null when unset); extra keys are kept."""
    if value is None or spec is None:
        return value
    if isinstance(spec, list):
        return [shape(item, spec[0]) for item in value] if isinstance(value, list) else value
    if not isinstance(value, dict):
        return value
    result = {key: shape(value.get(key), sub) for key, sub in spec.items()}
    result.update({key: item for key, item in value.items() if key not in spec})
    return result


def without_secrets(value: object, *, in_secrets: bool = False) -> object:
    """A copy with storage keys, passwords and secret environment values set to null."""
    if isinstance(value, list):
        return [without_secrets(item, in_secrets=in_secrets) for item in value]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if key in _SECRET_KEYS or (in_secrets and key == "value"):
                result[key] = None
            else:
                result[key] = without_secrets(item, in_secrets=key == "secrets")
        return result
    return value


def present(value: dict, spec: dict) -> dict:
    """The az view of a resource body: full shape, no secrets."""
    return shape(without_secrets(value), spec)


def timespan_text(value: str | None) -> str | None:
    """A duration as az printed it (Python's timedelta: '7 days, 0:00:00'), from '7.00:00:00' or 'P7D'."""
    if value is None:
        return None
    from batchai_cli.durations import parse_duration

    parsed = parse_duration(value)
    return str(parsed) if parsed is not None else value


def batchai_error(code: str, message: str, **details) -> dict:
    """An entry of executionInfo.errors / a cluster's errors, in the service's BatchAIError shape."""
    return {
        "code": code,
        "message": message,
        "details": [{"name": name, "value": str(value)} for name, value in details.items()] or None,
    }
