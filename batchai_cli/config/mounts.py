"""Storage mounts the way az filled them in (az-batchai-behaviour.md 3.1-3.3).

`<AZURE_BATCHAI_STORAGE_ACCOUNT>`/`<AZURE_BATCHAI_STORAGE_KEY>` are replaced, accountName is derived
from azureFileUrl, missing credentials get the effective key, and --nfs/--afs-name/--bfs-name are
appended in az's order. Two differences, on purpose:
- az looked a storage key up through ARM when a file named an account without its key; batchai has
  no ARM, so it fails there with az's "configure key" message and says what to give instead;
- two mounts on one relativeMountPath are an error (checks.mount_paths).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from batchai_cli.config.checks import ACCOUNT_PLACEHOLDER, KEY_PLACEHOLDER
from batchai_cli.config.issues import Issue
from batchai_cli.errors import BatchAIError

# az's first sentence is kept (scripts grep it); the rest says what works here, as batchai has no
# az configuration file.
WAYS_TO_CONFIGURE = (
    "batchai has no az configuration file: give --storage-account-name NAME --storage-account-key KEY, "
    "set AZURE_BATCHAI_STORAGE_ACCOUNT and AZURE_BATCHAI_STORAGE_KEY, or set AZURE_STORAGE_CONNECTION_STRING "
    "(its AccountName and AccountKey are used when nothing more specific is given)."
)
MSG_CONFIGURE_ACCOUNT = (
    f"Please configure Azure Storage account name via AZURE_BATCHAI_STORAGE_ACCOUNT. {WAYS_TO_CONFIGURE}"
)
MSG_CONFIGURE_KEY = f"Please configure Azure Storage account key via AZURE_BATCHAI_STORAGE_KEY. {WAYS_TO_CONFIGURE}"
MSG_BLOB_NO_ACCOUNT = (
    "Ill-formed Azure Blob File System reference in the configuration file - no account name provided."
)
STORAGE_SUFFIX = "core.windows.net"  # public Azure; az used the cloud's storage endpoint suffix


@dataclass
class Storage:
    """The effective storage account name and key (az 3.1), and what the file turned out to need."""

    name: str = ""
    key: str = ""
    issues: list[Issue] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    summary: str = ""  # the message of the whole failure, when a missing account or key is the cause

    def key_for(self, account: str) -> str:
        return self.key if account and account == self.name else ""


def effective_storage(name: str | None, key: str | None, env: Mapping[str, str]) -> Storage:
    """Options first, then AZURE_BATCHAI_STORAGE_ACCOUNT/KEY, then AZURE_STORAGE_CONNECTION_STRING's
    AccountName/AccountKey (az ignored AZURE_STORAGE_*; batchai's storage commands use the
    connection string, so the placeholders are filled from it too when nothing more specific is given).

    Where az looked the key of --storage-account-name up through ARM, batchai takes
    AZURE_BATCHAI_STORAGE_KEY when it belongs to that account (the variable's account is the same or
    unset), else the connection string's key when the string names that account.
    """
    env_name = env.get("AZURE_BATCHAI_STORAGE_ACCOUNT", "") or ""
    env_key = env.get("AZURE_BATCHAI_STORAGE_KEY", "") or ""
    conn_name, conn_key = _connection_string_account(env)
    if name:
        if key:
            return Storage(name, key)
        if env_key and env_name in ("", name):
            return Storage(name, env_key)
        return Storage(name, conn_key if conn_name == name else "")
    if env_name:
        return Storage(env_name, env_key or (conn_key if conn_name == env_name else ""))
    if env_key:  # a key without its account: az's behaviour, the name is asked for
        return Storage("", env_key)
    return Storage(conn_name, conn_key)


def _connection_string_account(env: Mapping[str, str]) -> tuple[str, str]:
    """(AccountName, AccountKey) of AZURE_STORAGE_CONNECTION_STRING, ("", "") without one; a string
    that does not parse is reported by the command that uses it for storage, not here."""
    text = env.get("AZURE_STORAGE_CONNECTION_STRING") or ""
    if not text:
        return "", ""
    from batchai_cli.errors import UsageError
    from batchai_cli.storage.credentials import parse_connection_string

    try:
        credentials = parse_connection_string(text, source="AZURE_STORAGE_CONNECTION_STRING")
    except UsageError:
        return "", ""
    return credentials.account_name or "", credentials.account_key or ""


def patch_mount_volumes(volumes: dict, storage: Storage, path: tuple) -> dict:
    """A patched copy of a file's mountVolumes; problems are added to storage.issues."""
    volumes = copy.deepcopy(volumes)
    need_account: list[tuple] = []
    need_key: list[tuple] = []
    for index, share in enumerate(_entries(volumes, "azureFileShares")):
        where = (*path, "azureFileShares", index)
        if not share.get("accountName"):
            url = share.get("azureFileUrl") or ""
            if not url:
                storage.issues.append(
                    Issue((*where, "azureFileUrl"), "Azure File URL cannot absent or be empty", anchor="parent")
                )
                continue
            try:
                host = urlparse(url).netloc
            except ValueError:  # e.g. an unclosed "[" (urllib takes it for an IPv6 address)
                host = ""
            if "." not in host:
                storage.issues.append(Issue((*where, "azureFileUrl"), f'Ill-formed Azure File URL "{url}"'))
                continue
            share["accountName"] = host.split(".")[0]
        if share["accountName"] == ACCOUNT_PLACEHOLDER:
            share["accountName"] = storage.name
            need_account.append((*where, "accountName"))
        if ACCOUNT_PLACEHOLDER in share.get("azureFileUrl", ""):
            share["azureFileUrl"] = share["azureFileUrl"].replace(ACCOUNT_PLACEHOLDER, storage.name)
            need_account.append((*where, "azureFileUrl"))
        _patch_credentials(share, storage, where, need_key)
    for index, container in enumerate(_entries(volumes, "azureBlobFileSystems")):
        where = (*path, "azureBlobFileSystems", index)
        if container.get("accountName") == ACCOUNT_PLACEHOLDER:
            container["accountName"] = storage.name
            need_account.append((*where, "accountName"))
        elif not container.get("accountName"):
            storage.issues.append(Issue((*where, "accountName"), MSG_BLOB_NO_ACCOUNT, anchor="parent"))
            continue
        _patch_credentials(container, storage, where, need_key)
    # One problem per missing thing, located where it is first needed and naming the other places.
    if need_account and not storage.name:
        storage.issues.append(_needed("The storage account name", ACCOUNT_PLACEHOLDER, need_account))
        storage.summary = MSG_CONFIGURE_ACCOUNT
    elif need_key and not storage.key:
        storage.issues.append(_needed(f'The key of storage account "{storage.name}"', KEY_PLACEHOLDER, need_key))
        storage.summary = MSG_CONFIGURE_KEY
    return volumes


def _needed(what: str, placeholder: str, places: list[tuple]) -> Issue:
    """One problem for a missing account name or key, at the first mount that needs it (a field
    filled in by batchai may not be in the file), naming every mount that needs it."""
    mounts = list(dict.fromkeys(_mount_of(place) for place in places))
    names = [f"{place[-2]}[{place[-1]}]" for place in mounts]
    return Issue(
        mounts[0],
        f"{what} ({placeholder}) is not configured; "
        + (f"{len(names)} mounts need it: {', '.join(names)}." if len(names) > 1 else f"{names[0]} needs it."),
    )


def _mount_of(place: tuple) -> tuple:
    """The path of the mount (azureFileShares[i] or azureBlobFileSystems[i]) that `place` is in."""
    for index, part in enumerate(place):
        if part in ("azureFileShares", "azureBlobFileSystems") and index + 1 < len(place):
            return place[: index + 2]
    return place


def _patch_credentials(entry: dict, storage: Storage, where: tuple, need_key: list) -> None:
    credentials = entry.get("credentials")
    if isinstance(credentials, dict) and credentials.get("accountKey") == KEY_PLACEHOLDER:
        credentials["accountKey"] = storage.key
        need_key.append((*where, "credentials", "accountKey"))
        return
    account = entry.get("accountName") or ""
    if not credentials and account == storage.name:
        entry["credentials"] = {"accountKey": storage.key}
        need_key.append((*where, "credentials"))
        return
    if account and not (
        isinstance(credentials, dict)
        and (credentials.get("accountKey") or credentials.get("accountKeySecretReference"))
    ):
        key = storage.key_for(account)
        if key:
            entry["credentials"] = {"accountKey": key}
            return
        # az fetched this key through ARM; there is no ARM here. One problem per account.
        if any(f'"{account}"' in hint for hint in storage.hints):
            return
        storage.issues.append(Issue((*where, "accountName"), MSG_CONFIGURE_KEY))
        storage.hints.append(
            f'The file mounts storage account "{account}" without its key, and batchai cannot look keys up in Azure '
            f"as az did: give --storage-account-name {account} --storage-account-key KEY, or credentials.accountKey "
            "in the file."
        )


def _entries(volumes: dict, kind: str) -> list[dict]:
    entries = volumes.get(kind)
    return [entry for entry in entries if isinstance(entry, dict)] if isinstance(entries, list) else []


def add_option_mounts(
    volumes: dict | None,
    storage: Storage,
    *,
    nfs_id: str | None,
    nfs_mount_path: str | None,
    afs_name: str | None,
    afs_mount_path: str | None,
    bfs_name: str | None,
    bfs_mount_path: str | None,
) -> tuple[dict | None, dict[tuple, str]]:
    """(volumes with the option mounts appended, {(kind, index): option} for each one added).

    Options are checked as az did, each message its own: an empty path first, then the account and key.
    """
    added: dict[tuple, str] = {}
    if not (nfs_id or afs_name or bfs_name):
        return volumes, added
    volumes = copy.deepcopy(volumes) if volumes else {}

    def append(kind: str, entry: dict, option: str) -> None:
        entries = volumes.setdefault(kind, [])
        added[(kind, len(entries))] = option
        entries.append(entry)

    if nfs_id:
        if not nfs_mount_path:
            raise BatchAIError("File server relative mount path cannot be empty.")
        append(
            "fileServers",
            {"fileServer": {"id": nfs_id}, "relativeMountPath": nfs_mount_path, "mountOptions": "rw"},
            f"--nfs-mount-path {nfs_mount_path}",
        )
    if afs_name:
        if not afs_mount_path:
            raise BatchAIError("Azure File share relative mount path cannot be empty.")
        _require(storage)
        append(
            "azureFileShares",
            {
                "accountName": storage.name,
                "azureFileUrl": f"https://{storage.name}.file.{STORAGE_SUFFIX}/{afs_name}",
                "credentials": {"accountKey": storage.key},
                "relativeMountPath": afs_mount_path,
                "fileMode": "0777",
                "directoryMode": "0777",
            },
            f"--afs-mount-path {afs_mount_path}",
        )
    if bfs_name:
        if not bfs_mount_path:
            raise BatchAIError("Azure Storage Container relative mount path cannot be empty.")
        _require(storage)
        append(
            "azureBlobFileSystems",
            {
                "accountName": storage.name,
                "containerName": bfs_name,
                "credentials": {"accountKey": storage.key},
                "relativeMountPath": bfs_mount_path,
            },
            f"--bfs-mount-path {bfs_mount_path}",
        )
    return volumes, added


def _require(storage: Storage) -> None:
    if not storage.name:
        raise BatchAIError(MSG_CONFIGURE_ACCOUNT)
    if not storage.key:
        raise BatchAIError(MSG_CONFIGURE_KEY)
