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
