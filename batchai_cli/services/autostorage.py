"""`cluster create --use-auto-storage`: az's auto-storage, in the storage account already configured.

az created a new storage account through Azure Resource Manager, then the share `batchaishare` and
the container `batchaicontainer` in it, mounted on every node at `autoafs` and `autobfs`. batchai
does the last two steps in the account the options or the environment name (connection string,
or account and key); creating an account through ARM stays out.
"""

from __future__ import annotations

from batchai_cli.errors import UsageError

SHARE = "batchaishare"
CONTAINER = "batchaicontainer"
SHARE_PATH = "autoafs"
CONTAINER_PATH = "autobfs"


def auto_storage_options(options: dict) -> dict:
    """`options` (create_cluster's keywords) with the auto-storage share and container added,
    after creating both where they do not exist yet."""
    from batchai_cli.storage import open_store
    from batchai_cli.storage.credentials import resolve_credentials

    if options.get("afs_name") or options.get("bfs_name"):
        raise UsageError(
            "--use-auto-storage mounts its own share and container; leave out --afs-name and --bfs-name.",
        )
    credentials = resolve_credentials(
        account_name=options.get("storage_account_name"), account_key=options.get("storage_account_key")
    )
    if not credentials.account_name or not credentials.account_key:
        raise UsageError(
            "--use-auto-storage needs a storage account and its key: batchai creates the share and "
            "container in it (creating a new account through Azure Resource Manager, as az did, is not done here).",
            hint="Pass --storage-account-name and --storage-account-key, or set AZURE_STORAGE_CONNECTION_STRING "
            "(or AZURE_BATCHAI_STORAGE_ACCOUNT and AZURE_BATCHAI_STORAGE_KEY).",
        )
    for location in (f"azurefile://{SHARE}", f"azureblob://{CONTAINER}"):
        with open_store(location, credentials) as store:
            store.create_root()
    return {
        **options,
        "storage_account_name": credentials.account_name,
        "storage_account_key": credentials.account_key,
        "afs_name": SHARE,
        "afs_mount_path": SHARE_PATH,
        "bfs_name": CONTAINER,
        "bfs_mount_path": CONTAINER_PATH,
    }
