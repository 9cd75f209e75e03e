"""What a job's processes inherit from the agent's environment (issue 13, item 9).

The agent runs with the environment of `job create` (it needs the storage credentials there to
ship logs and outputs), but the job must not: a job that prints `env` would write the key to
storage. So the job starts from the agent's environment without

- the credentials batchai reads (CREDENTIAL_VARIABLES), unless the job's own environmentVariables
  or secrets name them (the agent sets those after this, so they win);
- AZ_BATCHAI_* (the agent sets each one for the job itself);
- batchai's own bookkeeping (INTERNAL_VARIABLES).

A pure function, so what the job sees is stated and tested in one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Every variable batchai (storage/credentials.py) or azure-identity reads a secret from.
CREDENTIAL_VARIABLES = frozenset(
    {
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_BATCHAI_STORAGE_KEY",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PASSWORD",
        "AZURE_PASSWORD",
    }
)
INTERNAL_VARIABLES = frozenset({"BATCHAI_JOB_UMASK"})


def inherited(environ: Mapping[str, str]) -> dict[str, str]:
    """The part of `environ` a job (or a cluster's setup task) inherits."""
    return {
        name: value
        for name, value in environ.items()
        if name.upper() not in CREDENTIAL_VARIABLES
        and name not in INTERNAL_VARIABLES
        and not name.startswith("AZ_BATCHAI_")
    }


# -- a node's environment, for what runs there beside the job --------------------------------------
#
# The agent records, in the job's bundle, the variables it set for the job on its node and the
# folder the job runs in (env-<task>.json; secrets by name only, their values stay in the request).
# `job node exec` and the ranks Open MPI starts on the node (agent/shell.py) run in that
# environment: the inherited part is their own, as for the job.


def record_name(task_index: int) -> str:
    return f"env-{task_index}.json"


def recorded(env: Mapping[str, str], environ: Mapping[str, str], keep: set[str]) -> dict[str, str]:
    """Of a job's environment `env`, what the agent set: every AZ_BATCHAI_* variable, the job's own
    variables and secrets (`keep`), and whatever differs from the agent's own `environ`."""
    return {
        name: value
        for name, value in env.items()
        if name.startswith("AZ_BATCHAI_") or name in keep or environ.get(name) != value
    }


def node_variables(node_root: str) -> dict[str, str]:
    """What a command run on an idle node of a cluster (`cluster node exec`) sees of batchai's."""
    return {"AZ_BATCHAI_MOUNT_ROOT": os.path.join(node_root, "mounts")}
