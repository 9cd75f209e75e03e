"""Credential resolution (az's order), connection strings, secrecy; open_store's location forms."""

from __future__ import annotations

import subprocess
import sys

import pytest

from batchai_cli.errors import UsageError
from batchai_cli.storage import open_store
from batchai_cli.storage.blob import BlobStore
from batchai_cli.storage.credentials import (
    AZURITE_KEY,
    StorageCredentials,
    parse_connection_string,
    redact,
    resolve_credentials,
)
from batchai_cli.storage.local import LocalStore

KEY = "c2VjcmV0LWtleS1ieXRlcy0xMjM0NTY3ODkwMTIzNDU2Nzg5MA=="
OTHER_KEY = "b3RoZXIta2V5LWJ5dGVzLTEyMzQ1Njc4OTAxMjM0NTY3ODkw"
CONNECTION = f"DefaultEndpointsProtocol=https;AccountName=fromcs;AccountKey={KEY};EndpointSuffix=core.windows.net"


def test_explicit_options_win_over_the_environment():
    env = {"AZURE_STORAGE_CONNECTION_STRING": CONNECTION, "AZURE_STORAGE_KEY": OTHER_KEY}
    credentials = resolve_credentials(account_name="acct", account_key=KEY, environ=env)
    assert (credentials.account_name, credentials.account_key, credentials.kind) == ("acct", KEY, "key")
    assert credentials.source == "--account-key"


def test_explicit_connection_string():
    credentials = resolve_credentials(connection_string=CONNECTION, environ={})
    assert (credentials.account_name, credentials.account_key) == ("fromcs", KEY)
    assert credentials.endpoint("blob") == "https://fromcs.blob.core.windows.net"
    assert credentials.endpoint("file") == "https://fromcs.file.core.windows.net"


def test_environment_connection_string_comes_before_account_and_key():
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": CONNECTION,
        "AZURE_STORAGE_ACCOUNT": "envacct",
        "AZURE_STORAGE_KEY": OTHER_KEY,
    }
    credentials = resolve_credentials(environ=env)
    assert (credentials.account_name, credentials.source) == ("fromcs", "AZURE_STORAGE_CONNECTION_STRING")


def test_environment_connection_string_for_another_account_is_skipped():
    env = {"AZURE_STORAGE_CONNECTION_STRING": CONNECTION, "AZURE_STORAGE_KEY": OTHER_KEY}
    credentials = resolve_credentials(account_name="mine", environ=env)
    assert (credentials.account_name, credentials.account_key, credentials.source) == (
        "mine",
        OTHER_KEY,
        "AZURE_STORAGE_KEY",
    )


def test_batchai_variables_come_before_azure_storage_ones():
    env = {
        "AZURE_BATCHAI_STORAGE_ACCOUNT": "batchaiacct",
        "AZURE_BATCHAI_STORAGE_KEY": KEY,
        "AZURE_STORAGE_ACCOUNT": "plainacct",
        "AZURE_STORAGE_KEY": OTHER_KEY,
    }
    credentials = resolve_credentials(environ=env)
    assert (credentials.account_name, credentials.account_key) == ("batchaiacct", KEY)
    del env["AZURE_BATCHAI_STORAGE_KEY"], env["AZURE_BATCHAI_STORAGE_ACCOUNT"]
    assert resolve_credentials(environ=env).account_name == "plainacct"


def test_sas_from_option_and_environment():
    credentials = resolve_credentials(account_name="acct", sas_token="?sv=2024&sig=abc", environ={})
    assert (credentials.kind, credentials.sas_token) == ("sas", "sv=2024&sig=abc")
    env = {"AZURE_STORAGE_ACCOUNT": "acct", "AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=x"}
    assert resolve_credentials(environ=env).kind == "sas"


def test_nothing_means_anonymous():
    credentials = resolve_credentials(account_name="public", environ={})
    assert (credentials.kind, credentials.account_name) == ("anonymous", "public")


def test_refused_combinations():
    with pytest.raises(UsageError):
        resolve_credentials(account_key=KEY, sas_token="sig=x", environ={})
    with pytest.raises(UsageError):
        resolve_credentials(auth_mode="login", account_key=KEY, environ={})
    with pytest.raises(UsageError):
        resolve_credentials(auth_mode="token", environ={})
    with pytest.raises(UsageError):
        resolve_credentials(account_name="other", connection_string=CONNECTION, environ={})


def test_login_uses_azure_identity_and_keeps_endpoints():
    env = {"AZURE_STORAGE_CONNECTION_STRING": "AccountName=dev;BlobEndpoint=http://127.0.0.1:1/dev"}
    credentials = resolve_credentials(auth_mode="login", environ=env)
    assert credentials.kind == "login"
    assert type(credentials.token_credential).__name__ == "DefaultAzureCredential"
    assert credentials.endpoint("blob") == "http://127.0.0.1:1/dev"


def test_connection_string_forms():
    azurite = parse_connection_string("UseDevelopmentStorage=true")
    assert (azurite.account_name, azurite.account_key) == ("devstoreaccount1", AZURITE_KEY)
    assert azurite.endpoint("blob") == "http://127.0.0.1:10000/devstoreaccount1"
    emulator = parse_connection_string(
        f"DefaultEndpointsProtocol=http;AccountKey={KEY};FileEndpoint=http://127.0.0.1:4567/acct1;"
    )
    assert (emulator.account_name, emulator.endpoint("file")) == ("acct1", "http://127.0.0.1:4567/acct1")
    china = parse_connection_string(f"AccountName=cn;AccountKey={KEY};EndpointSuffix=core.chinacloudapi.cn")
    assert china.endpoint("blob") == "https://cn.blob.core.chinacloudapi.cn"
    sas = parse_connection_string("BlobEndpoint=https://x.blob.core.windows.net;SharedAccessSignature=sv=1&sig=s")
    assert (sas.account_name, sas.kind) == ("x", "sas")


def test_bad_connection_strings_never_echo_the_secret():
    for bad in (f"garbage {KEY}", f"AccountKey={KEY}"):
        with pytest.raises(UsageError) as info:
            parse_connection_string(bad)
        assert KEY not in str(info.value)


def test_secrets_stay_out_of_reprs_and_redacted_text():
    credentials = parse_connection_string(CONNECTION)
    sas = StorageCredentials(account_name="a", sas_token="sv=2024&sig=SECRETSIG%2B")
    for shown in (repr(credentials), str(credentials), repr(sas)):
        assert KEY not in shown and "SECRETSIG" not in shown
    assert credentials.redact(f"the key is {KEY}") == "the key is ***"
    assert redact("https://a/c/b?sv=1&sig=abc%2Bdef&se=x") == "https://a/c/b?sv=1&sig=***&se=x"
    assert redact(CONNECTION) == CONNECTION.replace(KEY, "***")


def test_an_invalid_key_is_named_without_being_shown():
    credentials = StorageCredentials(account_name="acct", account_key="not base64 !!")
    with pytest.raises(Exception) as info:
        credentials.key_bytes()
    assert "not valid base64" in str(info.value) and "not base64 !!" not in str(info.value)


# -- open_store ---------------------------------------------------------------------------------


def test_paths_and_file_urls_are_local(tmp_path):
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert open_store(tmp_path.as_uri()).root == tmp_path
    assert open_store("relative/dir").root.is_absolute()


def test_azure_urls():
    credentials = StorageCredentials(account_name="acct", account_key=KEY)
    store = open_store("https://acct.blob.core.windows.net/data/some/prefix", credentials)
    assert isinstance(store, BlobStore)
    assert (store.container, store.prefix, store.credentials.account_key) == ("data", "some/prefix", KEY)
    assert store.url("x y.txt") == "https://acct.blob.core.windows.net/data/some/prefix/x%20y.txt"
    other = open_store("https://other.blob.core.windows.net/data", credentials)
    assert (other.credentials.account_name, other.credentials.kind) == ("other", "anonymous")
    with_sas = open_store("https://other.blob.core.windows.net/data/p?sv=2024&sig=zzz", credentials)
    assert (with_sas.credentials.kind, with_sas.credentials.sas_token) == ("sas", "sv=2024&sig=zzz")
    assert with_sas.prefix == "p"


def test_emulator_forms():
    credentials = parse_connection_string(
        f"AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1"
    )
    by_scheme = open_store("azureblob://logs/job/1", credentials)
    assert (by_scheme.container, by_scheme.prefix) == ("logs", "job/1")
    assert by_scheme.url("f") == "http://127.0.0.1:10000/devstoreaccount1/logs/job/1/f"
    by_url = open_store("http://127.0.0.1:10000/devstoreaccount1/logs/job", credentials)
    assert (by_url.container, by_url.prefix) == ("logs", "job")


def test_unknown_locations():
    for bad in ("s3://bucket/x", "https://example.com/x", "azureblob://"):
        with pytest.raises(ValueError):
            open_store(bad, StorageCredentials(account_name="a"))


def test_importing_storage_loads_no_azure_sdk():
    code = (
        "import sys, batchai_cli.storage as s\n"
        "from batchai_cli.storage.credentials import StorageCredentials as C\n"
        "st = s.open_store('azureblob://c/p', C(account_name='a', account_key='a2V5'))\n"
        "st.url('x')\n"
        "print(sorted(m for m in sys.modules if m.startswith('azure')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
