"""Storage credentials and endpoints: where they come from, in az's order, and how they stay secret.

Order (the first that applies wins):

1. explicit options: `--connection-string`; else `--account-key` / `--sas-token` (the account
   name from `--account-name` or the environment); `--auth-mode login` asks for azure-identity;
2. `AZURE_STORAGE_CONNECTION_STRING` (skipped when `--account-name` names another account);
3. account + key from `AZURE_BATCHAI_STORAGE_ACCOUNT` / `AZURE_BATCHAI_STORAGE_KEY`, then
   `AZURE_STORAGE_ACCOUNT` / `AZURE_STORAGE_KEY`;
4. a SAS token from `AZURE_STORAGE_SAS_TOKEN`;
5. nothing: anonymous access (public containers), which fails on the first private request with a
   message naming the options above.

Endpoints come from the connection string (BlobEndpoint=, FileEndpoint=, or
DefaultEndpointsProtocol + EndpointSuffix; UseDevelopmentStorage=true means Azurite on its
default port), so the same code talks to Azure, to Azurite and to the Files emulator.

The key, the SAS and the connection string never appear in a repr, a log line or an error
message: the fields are hidden from repr and `redact()` scrubs any text that might carry them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from batchai_cli.errors import StorageError, UsageError

# typing is for the type checker only: a node's agent starts faster without importing it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's published well-known development key (not a secret).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

KEY_HINT = "Check --account-key or AZURE_STORAGE_KEY."


@dataclass(frozen=True)
class StorageCredentials:
    """How to reach and sign requests for one storage account.

    `kind` is "key", "sas", "login" or "anonymous". `source` names where the secret came from
    (an option or an environment variable), for messages. Secrets are excluded from repr.
    """

    account_name: str | None = None
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    token_credential: Any = field(default=None, repr=False)
    blob_endpoint: str | None = None
    file_endpoint: str | None = None
    protocol: str = "https"
    endpoint_suffix: str = "core.windows.net"
    source: str = ""

    @property
    def kind(self) -> str:
        if self.account_key:
            return "key"
        if self.sas_token:
            return "sas"
        if self.token_credential is not None:
            return "login"
        return "anonymous"

    def endpoint(self, service: str) -> str:
        """The service's base URL ("blob" or "file"), without a trailing '/'.

        UsageError when neither an endpoint nor an account name is known.
        """
        explicit = self.blob_endpoint if service == "blob" else self.file_endpoint
        if explicit:
            return explicit.rstrip("/")
        if not self.account_name:
            raise UsageError(
                "No storage account given.",
                hint="Use --account-name (or AZURE_STORAGE_ACCOUNT) or --connection-string.",
            )
        # Only what can be a host name label: '../..' or 70 letters failed in idna, as a traceback.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}", self.account_name):
            raise UsageError(
                f"'{self.account_name}' is not a storage account name.",
                hint="Storage account names are 3 to 24 lowercase letters and digits.",
            )
        return f"{self.protocol}://{self.account_name}.{service}.{self.endpoint_suffix}"

    def key_bytes(self) -> bytes:
        """The account key decoded; StorageError (without the key) when it is not base64."""
        assert self.account_key is not None
        try:
            return base64.b64decode(self.account_key, validate=True)
        except (binascii.Error, ValueError):
            raise StorageError(
                f"The account key for storage account '{self.account_name}' is not valid base64.",
                hint=KEY_HINT,
            ) from None

    def with_account(self, account_name: str) -> StorageCredentials:
        """These credentials for `account_name`: kept when they are for it, else dropped.

        A URL naming another account must not be sent this account's key.
        """
        if self.account_name == account_name:
            return self
        return StorageCredentials(account_name=account_name, token_credential=self.token_credential)

    def with_sas(self, sas_token: str) -> StorageCredentials:
        return replace(self, sas_token=sas_token.lstrip("?"), account_key=None, source="the URL")

    def redact(self, text: str) -> str:
        """`text` with the key, the SAS signature and any connection string replaced by ***."""
        return redact(text, self.account_key, self.sas_token)


_SIG_RE = re.compile(r"(?i)((?:sig|AccountKey|SharedAccessSignature)=)[^&;\s\"'<]+")


def redact(text: str, *secrets: str | None) -> str:
    """Scrub secrets from `text`: each given secret (raw and URL-encoded), and any sig=/AccountKey=."""
    from urllib.parse import quote

    for secret in secrets:
        if secret:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                text = text.replace(form, "***")
    return _SIG_RE.sub(r"\1***", text)


def parse_connection_string(connection_string: str, *, source: str = "--connection-string") -> StorageCredentials:
    """Credentials and endpoints from an Azure Storage connection string.

    UsageError (that never quotes the string) when it is not `Key=Value;...` or names no account
    and no endpoint.
    """
    settings: dict[str, str] = {}
    for part in connection_string.strip().split(";"):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep:
            raise UsageError(
                f"The connection string from {source} is not a list of Name=Value pairs.",
                hint="Copy it again from the portal (Access keys) or `az storage account show-connection-string`.",
            )
        settings[name.strip().lower()] = value.strip()
    if settings.get("usedevelopmentstorage", "").lower() == "true":
        proxy = settings.get("developmentstorageproxyuri", "http://127.0.0.1").rstrip("/")
        return StorageCredentials(
            account_name=AZURITE_ACCOUNT,
            account_key=AZURITE_KEY,
            blob_endpoint=f"{proxy}:10000/{AZURITE_ACCOUNT}",
            protocol="http",
            source=source,
        )
    credentials = StorageCredentials(
        account_name=settings.get("accountname") or None,
        account_key=settings.get("accountkey") or None,
        sas_token=(settings.get("sharedaccesssignature") or "").lstrip("?") or None,
        blob_endpoint=settings.get("blobendpoint") or None,
        file_endpoint=settings.get("fileendpoint") or None,
        protocol=settings.get("defaultendpointsprotocol", "https"),
        endpoint_suffix=settings.get("endpointsuffix", "core.windows.net"),
        source=source,
    )
    if not credentials.account_name and not (credentials.blob_endpoint or credentials.file_endpoint):
        raise UsageError(
            f"The connection string from {source} names no AccountName and no endpoint.",
            hint="A connection string looks like DefaultEndpointsProtocol=https;AccountName=...;AccountKey=...",
        )
    if not credentials.account_name:
        credentials = replace(credentials, account_name=_account_from_endpoint(credentials))
    return credentials


def _account_from_endpoint(credentials: StorageCredentials) -> str | None:
    from urllib.parse import urlsplit

    endpoint = urlsplit(credentials.blob_endpoint or credentials.file_endpoint or "")
    host = endpoint.hostname or ""
    if re.fullmatch(r"[\d.]+|localhost|\[[\d:]+\]", host):
        # path-style (emulators): http://127.0.0.1:10000/<account>
        return endpoint.path.strip("/").split("/")[0] or None
    return host.split(".")[0] or None


def resolve_credentials(
    *,
    account_name: str | None = None,
    account_key: str | None = None,
    connection_string: str | None = None,
    sas_token: str | None = None,
    auth_mode: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> StorageCredentials:
    """Storage credentials from explicit options and the environment, in the order of this module.

    UsageError for combinations az refuses (a key and a SAS together; --auth-mode login with a
    key); nothing here talks to the network.
    """
    env = os.environ if environ is None else environ
    if auth_mode not in (None, "key", "login"):
        raise UsageError(f"--auth-mode must be 'key' or 'login', not {auth_mode!r}.")
    if account_key and sas_token:
        raise UsageError("Give either --account-key or --sas-token, not both.")
    if auth_mode == "login" and (account_key or sas_token or connection_string):
        raise UsageError(
            "--auth-mode login does not take --account-key, --sas-token or --connection-string.",
        )

    if connection_string:
        credentials = parse_connection_string(connection_string)
        if account_name and credentials.account_name and account_name != credentials.account_name:
            raise UsageError("--account-name names another account than --connection-string.")
        return credentials

    env_account = env.get("AZURE_BATCHAI_STORAGE_ACCOUNT") or env.get("AZURE_STORAGE_ACCOUNT")
    name = account_name or env_account
    if auth_mode == "login":
        env_connection = _env_connection_string(env, account_name)
        base = env_connection or StorageCredentials(account_name=name)
        return StorageCredentials(
            account_name=name or base.account_name,
            blob_endpoint=base.blob_endpoint,
            file_endpoint=base.file_endpoint,
            protocol=base.protocol,
            endpoint_suffix=base.endpoint_suffix,
            token_credential=_default_azure_credential(),
            source="--auth-mode login",
        )
    if account_key:
        return StorageCredentials(account_name=name, account_key=account_key, source="--account-key")
    if sas_token:
        return StorageCredentials(account_name=name, sas_token=sas_token.lstrip("?"), source="--sas-token")

    env_connection = _env_connection_string(env, account_name)
    if env_connection is not None:
        return env_connection

    for account_var, key_var in (
        ("AZURE_BATCHAI_STORAGE_ACCOUNT", "AZURE_BATCHAI_STORAGE_KEY"),
        ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"),
    ):
        key = env.get(key_var)
        if key and (account_name or env.get(account_var)):
            return StorageCredentials(
                account_name=account_name or env.get(account_var), account_key=key, source=key_var
            )
    env_sas = env.get("AZURE_STORAGE_SAS_TOKEN")
    if env_sas:
        return StorageCredentials(account_name=name, sas_token=env_sas.lstrip("?"), source="AZURE_STORAGE_SAS_TOKEN")
    return StorageCredentials(account_name=name)


NO_CREDENTIALS_HINT = (
    "Give one of: --account-key (or AZURE_STORAGE_KEY) with --account-name, --sas-token (or AZURE_STORAGE_SAS_TOKEN, "
    "or a SAS in the URL), --connection-string (or AZURE_STORAGE_CONNECTION_STRING), or --auth-mode login. "
    "For a public container, --anonymous."
)


def require_credentials(credentials: StorageCredentials, location: str, *, anonymous: bool = False):
    """`credentials`, unless they are none at all for `location` (no key, SAS, login, nor a SAS in
    the URL) and anonymous access was not asked for: then UsageError naming the ways to give them.
    Unsigned requests to a private account fail only after retries, at the public host."""
    if anonymous or credentials.kind != "anonymous" or "sig=" in location.partition("?")[2]:
        return credentials
    account = credentials.account_name or _account_from_endpoint(credentials)
    where = f"storage account '{account}'" if account else "the storage account"
    raise UsageError(f"No credentials for {where}.", hint=NO_CREDENTIALS_HINT)


def _env_connection_string(env: Mapping[str, str], account_name: str | None) -> StorageCredentials | None:
    value = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if not value:
        return None
    credentials = parse_connection_string(value, source="AZURE_STORAGE_CONNECTION_STRING")
    if account_name and credentials.account_name != account_name:
        return None
    return credentials


def _default_azure_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:  # pragma: no cover - azure-identity is a dependency
        raise StorageError(
            "--auth-mode login needs the azure-identity package.", hint="pip install azure-identity"
        ) from None
    return DefaultAzureCredential()
