"""The Store contract on Azure Blob (Azurite), plus what only Blob does."""

from __future__ import annotations

import base64
import logging
import socket
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from batchai_cli.errors import StorageError
from batchai_cli.storage import open_store
from batchai_cli.storage._rest import RestClient
from batchai_cli.storage.blob import BlobStore
from batchai_cli.storage.credentials import StorageCredentials, parse_connection_string
from tests.fixtures.azurite import free_port
from tests.storage.contract import StoreContract, listing, md5

pytestmark = pytest.mark.integration


@pytest.fixture
def blob_credentials(azurite):
    return parse_connection_string(azurite.connection_string)


class TestBlobStore(StoreContract):
    @pytest.fixture(params=["", "some/prefix"], ids=["container", "prefix"])
    def store(self, request, azurite_container, blob_credentials):
        store = BlobStore(azurite_container, request.param, credentials=blob_credentials)
        yield store
        store.close()

    @pytest.fixture
    def missing_store(self, azurite, blob_credentials):
        store = BlobStore(f"missing{uuid.uuid4().hex[:12]}", credentials=blob_credentials)
        yield store
        store.delete_root()


@pytest.fixture
def sdk_container(azurite, azurite_container):
    """The container through azure-storage-blob: a real third-party writer of markers and blobs."""
    from azure.storage.blob import ContainerClient

    client = ContainerClient.from_connection_string(
        azurite.connection_string, azurite_container, connection_timeout=5, read_timeout=30
    )
    yield client
    client.close()


def test_directory_markers_are_directories(sdk_container, azurite_container, blob_credentials):
    sdk_container.upload_blob("m/marked", b"", metadata={"hdi_isfolder": "true"})
    sdk_container.upload_blob("m/marked/inside.txt", b"in")
    sdk_container.upload_blob("m/lonely", b"", metadata={"hdi_isfolder": "true"})
    sdk_container.upload_blob("m/x", b"")  # a zero-byte blob whose name is also a prefix
    sdk_container.upload_blob("m/x.txt", b"sibling sorting between x and x/")
    sdk_container.upload_blob("m/x/y.txt", b"child")
    sdk_container.upload_blob("m/slash/", b"")  # "dir/" style marker
    sdk_container.upload_blob("m/empty.txt", b"")  # a real empty file: no children
    store = BlobStore(azurite_container, credentials=blob_credentials)
    assert listing(store.list_dir("m")) == {
        "m/marked": (True, 0),
        "m/lonely": (True, 0),
        "m/x": (True, 0),
        "m/x.txt": (False, 32),
        "m/slash": (True, 0),
        "m/empty.txt": (False, 0),
    }
    assert listing(store.walk("m")) == {
        "m/marked/inside.txt": (False, 2),
        "m/x.txt": (False, 32),
        "m/x/y.txt": (False, 5),
        "m/empty.txt": (False, 0),
    }
    assert list(store.list_dir("m/lonely")) == []
    assert list(store.list_dir("m/slash")) == []
    assert listing(store.list_dir("m/x")) == {"m/x/y.txt": (False, 5)}
    for directory in ("m/marked", "m/lonely", "m/x", "m/slash"):
        assert store.stat(directory).is_dir, directory
        with pytest.raises(IsADirectoryError):
            store.read(directory)
    assert store.stat("m/empty.txt") == store.stat("m/empty.txt")
    assert not store.stat("m/empty.txt").is_dir


def test_makedirs_writes_a_blobfuse_marker(sdk_container, azurite_container, blob_credentials):
    store = BlobStore(azurite_container, "pre", credentials=blob_credentials)
    store.makedirs("a/b")
    blob = sdk_container.get_blob_client("pre/a/b").get_blob_properties()
    assert (blob.size, blob.metadata) == (0, {"hdi_isfolder": "true"})


def test_md5_and_content_type_as_other_tools_see_them(sdk_container, azurite_container, blob_credentials, tmp_path):
    store = BlobStore(azurite_container, credentials=blob_credentials, block_size=64 * 1024, single_put_max=64 * 1024)
    small, big = b"small file", bytes(range(256)) * 1000
    (tmp_path / "big").write_bytes(big)
    store.write("small.txt", small, content_type="text/plain")
    store.upload_file("big.bin", tmp_path / "big", content_type="application/x-big", max_concurrency=3)
    small_props = sdk_container.get_blob_client("small.txt").get_blob_properties()
    big_props = sdk_container.get_blob_client("big.bin").get_blob_properties()
    assert small_props.content_settings.content_md5 == md5(small)
    assert small_props.content_settings.content_type == "text/plain"
    assert big_props.content_settings.content_md5 == md5(big)
    assert big_props.content_settings.content_type == "application/x-big"
    assert big_props.blob_type == "BlockBlob"
    committed, _ = sdk_container.get_blob_client("big.bin").get_block_list()
    assert [b.size for b in committed] == [65536, 65536, 65536, 59392]
    assert sdk_container.download_blob("big.bin").readall() == big


def test_append_makes_an_append_blob(sdk_container, azurite_container, blob_credentials):
    store = BlobStore(azurite_container, credentials=blob_credentials)
    store.append("stdout.txt", b"a\n", 0)
    store.append("stdout.txt", b"b\n", 2)
    props = sdk_container.get_blob_client("stdout.txt").get_blob_properties()
    assert (props.blob_type, props.size, props.append_blob_committed_block_count) == ("AppendBlob", 4, 2)


def test_append_to_a_block_blob_is_refused(azurite_container, blob_credentials):
    store = BlobStore(azurite_container, credentials=blob_credentials)
    store.write("block.txt", b"abc")
    with pytest.raises(StorageError, match="not an append blob"):
        store.append("block.txt", b"d", 3)
    assert store.read("block.txt") == b"abc"


def test_a_missing_container_is_named(azurite, blob_credentials):
    store = BlobStore("nosuchcontainer", credentials=blob_credentials)
    message = "The container 'nosuchcontainer' does not exist in storage account 'devstoreaccount1'."
    with pytest.raises(FileNotFoundError) as info:
        store.write("x.txt", b"x")
    assert str(info.value) == message
    with pytest.raises(FileNotFoundError) as info:
        list(store.walk(""))
    assert str(info.value) == message


def test_an_invalid_container_name(azurite, blob_credentials):
    store = BlobStore("Bad_Name", credentials=blob_credentials)
    with pytest.raises(StorageError, match="not a valid container name"):
        store.create_root()


def test_walk_reads_one_listing_page_per_page_size(azurite_container, blob_credentials, caplog):
    store = BlobStore(azurite_container, credentials=blob_credentials)
    assert store.page_size == 5000
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.write(f"d/{i // 10}/{i:03d}", b"x"), range(120)))
    store.page_size = 50
    with caplog.at_level(logging.DEBUG, logger="batchai_cli.storage"):
        found = list(store.walk("d"))
    assert len(found) == 120
    list_calls = [r.getMessage() for r in caplog.records if "comp=list" in r.getMessage()]
    assert len(list_calls) == 3
    assert all("maxresults=50" in call and "delimiter" not in call for call in list_calls)


def test_wrong_key_is_one_clear_line_without_the_key(azurite, azurite_container):
    wrong_key = base64.b64encode(b"not the right key at all, not at all!!").decode()
    credentials = StorageCredentials(
        account_name="devstoreaccount1",
        account_key=wrong_key,
        blob_endpoint=azurite.blob_endpoint,
        source="--account-key",
    )
    store = BlobStore(azurite_container, credentials=credentials)
    with pytest.raises(StorageError) as info:
        store.write("x.txt", b"x")
    # Azure's code is AuthenticationFailed; Azurite answers AuthorizationFailure.
    expected = (
        "The storage account 'devstoreaccount1' rejected the credentials (AuthorizationFailure). "
        "Check --account-key or AZURE_STORAGE_KEY."
    )
    assert str(info.value) == expected
    assert isinstance(info.value, PermissionError)
    with pytest.raises(StorageError) as info:
        store.stat("x.txt")  # HEAD: no body, the code comes from x-ms-error-code
    assert str(info.value) == expected
    assert wrong_key not in repr(store) + repr(credentials)


def test_keys_stay_out_of_debug_logs(azurite, azurite_container, blob_credentials, caplog, tmp_path):
    key = blob_credentials.account_key
    store = BlobStore(azurite_container, credentials=blob_credentials, block_size=1024, single_put_max=1024)
    (tmp_path / "f").write_bytes(b"z" * 5000)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("azure").setLevel(logging.DEBUG)
        store.write("a.txt", b"data")
        store.upload_file("b.bin", tmp_path / "f")
        list(store.walk(""))
        url = store.download_url("a.txt")
        sas_store = BlobStore(
            azurite_container,
            credentials=StorageCredentials(
                account_name="devstoreaccount1", sas_token=url.split("?", 1)[1], blob_endpoint=azurite.blob_endpoint
            ),
        )
        assert sas_store.read("a.txt") == b"data"
        from azure.storage.blob import BlobClient

        sdk_client = BlobClient.from_connection_string(
            azurite.connection_string, azurite_container, "a.txt", logging_enable=True
        )
        assert sdk_client.download_blob().readall() == b"data"
    text = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert "comp=list" in text and "GET" in text  # the debug log did capture requests
    signature = parse_qs(urlsplit(url).query)["sig"][0]
    for secret in (key, quote(key, safe=""), signature, quote(signature, safe="")):
        assert secret not in text


def test_sas_only_credentials(azurite, azurite_container):
    from azure.storage.blob import generate_container_sas

    sas = generate_container_sas(
        "devstoreaccount1",
        azurite_container,
        account_key=azurite.account_key,
        permission="racwdl",
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    credentials = StorageCredentials(
        account_name="devstoreaccount1", sas_token=sas, blob_endpoint=azurite.blob_endpoint
    )
    store = BlobStore(azurite_container, "p", credentials=credentials)
    store.write("f.txt", b"via sas")
    assert listing(store.list_dir("")) == {"f.txt": (False, 7)}
    assert store.append("log", b"x", 0) == 1
    url = store.download_url("f.txt")
    assert url == f"{azurite.blob_endpoint}/{azurite_container}/p/f.txt?{sas}"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"via sas"
    read_only = StorageCredentials(
        account_name="devstoreaccount1",
        sas_token=generate_container_sas(
            "devstoreaccount1",
            azurite_container,
            account_key=azurite.account_key,
            permission="rl",
            expiry=datetime.now(timezone.utc) + timedelta(hours=1),
        ),
        blob_endpoint=azurite.blob_endpoint,
    )
    with pytest.raises(StorageError, match="do not allow this"):
        BlobStore(azurite_container, credentials=read_only).write("g.txt", b"no")


def test_expired_download_url_is_refused(azurite_container, blob_credentials):
    store = BlobStore(azurite_container, credentials=blob_credentials)
    store.write("f.txt", b"x")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(store.download_url("f.txt", expiry_minutes=-5), timeout=10)
    assert info.value.code == 403


def test_open_store_with_the_emulator_url(azurite, azurite_container, blob_credentials):
    store = open_store(f"{azurite.blob_endpoint}/{azurite_container}/deep/er", blob_credentials)
    assert isinstance(store, BlobStore)
    assert (store.container, store.prefix) == (azurite_container, "deep/er")
    store.write("f.txt", b"x")
    assert open_store(f"azureblob://{azurite_container}", blob_credentials).read("deep/er/f.txt") == b"x"


def test_a_server_that_never_answers_fails_fast():
    """A listening socket that accepts and never replies: the read timeout turns the hang into an error."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        port = server.getsockname()[1]
        credentials = StorageCredentials(
            account_name="devstoreaccount1",
            account_key=base64.b64encode(b"k" * 64).decode(),
            blob_endpoint=f"http://127.0.0.1:{port}/devstoreaccount1",
        )
        client = RestClient(credentials.blob_endpoint, credentials, read_timeout=0.3, retries=1)
        store = BlobStore("c", credentials=credentials, client=client)
        started = time.monotonic()
        with pytest.raises(StorageError, match="did not answer: timed out"):
            store.write("x", b"x")
        assert time.monotonic() - started < 3


def test_a_stopped_server_is_a_storage_error():
    port = free_port()
    credentials = StorageCredentials(
        account_name="devstoreaccount1", blob_endpoint=f"http://127.0.0.1:{port}/devstoreaccount1"
    )
    client = RestClient(credentials.blob_endpoint, credentials, retries=2)
    with pytest.raises(StorageError, match=f"127.0.0.1:{port} did not answer: connection refused"):
        BlobStore("c", credentials=credentials, client=client).stat("x")


def test_login_without_a_token_is_one_line(azurite, azurite_container):
    from azure.core.exceptions import ClientAuthenticationError

    class NoLogin:
        """A TokenCredential on a machine where nobody logged in."""

        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("nobody is logged in here")

    credentials = StorageCredentials(
        account_name="devstoreaccount1", blob_endpoint=azurite.blob_endpoint, token_credential=NoLogin()
    )
    with pytest.raises(StorageError) as info:
        BlobStore(azurite_container, credentials=credentials).write("x.txt", b"x")
    assert str(info.value) == (
        "--auth-mode login could not get a token for Azure Storage: nobody is logged in here "
        "Run `az login`, or set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET."
    )
