"""Storage: one Store contract (base.py) over a local folder, Azure Blob and Azure Files.

`open_store(location)` picks the backend from the location:

=============================================================  =============================
location                                                       store
=============================================================  =============================
``/data/x``, ``./x``, ``file:///data/x``                        LocalStore
``https://<acct>.blob.core.windows.net/<container>[/prefix]``  BlobStore
``https://<acct>.file.core.windows.net/<share>[/dir]``         FileShareStore
``azureblob://<container>[/prefix]``                           BlobStore at the credentials'
                                                               blob endpoint
``azurefile://<share>[/dir]``                                  FileShareStore at the
                                                               credentials' file endpoint
a URL under the credentials' BlobEndpoint / FileEndpoint       BlobStore / FileShareStore
(emulators: ``http://127.0.0.1:10000/devstoreaccount1/c/p``)
=============================================================  =============================

A ``?sv=...&sig=...`` query on an https URL is used as the SAS token. The azureblob:// and
azurefile:// forms are how the rest of batchai names a container or share whose account and
endpoint come from the credentials (connection string, environment), so the same code runs
against Azure, Azurite and the Files emulator.

Backends are imported when first used, so importing this package never loads azure.*.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from batchai_cli.storage.base import Entry, Store, clean_path
from batchai_cli.storage.credentials import StorageCredentials, resolve_credentials

# typing is for the type checker only: a node's agent starts faster without importing it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from batchai_cli.storage.blob import BlobStore
    from batchai_cli.storage.fileshare import FileShareStore

__all__ = ["Entry", "StorageCredentials", "Store", "open_store", "resolve_credentials"]

_AZURE_HOST = re.compile(r"^(?P<account>[a-z0-9]+)\.(?P<service>blob|file)\.(?P<suffix>.+)$")


def open_store(location: str, credentials: StorageCredentials | None = None) -> Store:
    """The Store for `location` (see the module docstring for the forms).

    `credentials` default to resolve_credentials() (the environment). Raises ValueError for a
    location no backend understands; nothing here talks to the network.
    """
    if "://" not in location or re.match(r"^[A-Za-z]:[\\/]", location):
        from batchai_cli.storage.local import LocalStore

        return LocalStore(location)
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme == "file":
        from batchai_cli.storage.local import LocalStore

        return LocalStore(unquote(parts.path))
    if credentials is None:
        credentials = resolve_credentials()
    if scheme in ("azureblob", "azurefile"):
        root, _, sub_path = (parts.netloc + unquote(parts.path)).partition("/")
        return _azure_store("blob" if scheme == "azureblob" else "file", root, sub_path, credentials)
    if scheme in ("http", "https"):
        for service in ("blob", "file"):
            endpoint = credentials.blob_endpoint if service == "blob" else credentials.file_endpoint
            if endpoint and location.startswith(endpoint.rstrip("/") + "/"):
                rest = unquote(urlsplit(location[len(endpoint.rstrip("/")) :]).path).lstrip("/")
                root, _, sub_path = rest.partition("/")
                return _azure_store(service, root, sub_path, _with_url_sas(credentials, parts.query))
        match = _AZURE_HOST.match(parts.hostname or "")
        if match:
            service, account = match["service"], match["account"]
            account_credentials = credentials.with_account(account)
            if not (account_credentials.blob_endpoint or account_credentials.file_endpoint):
                account_credentials = StorageCredentials(
                    account_name=account,
                    account_key=account_credentials.account_key,
                    sas_token=account_credentials.sas_token,
                    token_credential=account_credentials.token_credential,
                    protocol=scheme,
                    endpoint_suffix=match["suffix"],
                    source=account_credentials.source,
                )
            root, _, sub_path = unquote(parts.path).lstrip("/").partition("/")
            return _azure_store(service, root, sub_path, _with_url_sas(account_credentials, parts.query))
    raise ValueError(
        f"Not a storage location batchai knows: {location.split('?')[0]!r}. Use a folder, "
        "https://<account>.blob.core.windows.net/<container>, "
        "https://<account>.file.core.windows.net/<share>, azureblob://<container> or azurefile://<share>."
    )


def _with_url_sas(credentials: StorageCredentials, query: str) -> StorageCredentials:
    return credentials.with_sas(query) if "sig=" in query else credentials


def _azure_store(service: str, root: str, sub_path: str, credentials: StorageCredentials) -> BlobStore | FileShareStore:
    if not root:
        raise ValueError(f"A {'container' if service == 'blob' else 'share'} name is needed.")
    if service == "blob":
        from batchai_cli.storage.blob import BlobStore

        return BlobStore(root, clean_path(sub_path), credentials=credentials)
    from batchai_cli.storage.fileshare import FileShareStore

    return FileShareStore(root, clean_path(sub_path), credentials=credentials)
