"""The Store contract on Azure Files (the emulator in batchai_cli/emulators/azfiles), plus what only Files does."""

from __future__ import annotations

import base64
import uuid

import pytest

from batchai_cli.errors import StorageError
from batchai_cli.storage import open_store
from batchai_cli.storage.credentials import StorageCredentials, parse_connection_string
from batchai_cli.storage.fileshare import FileShareStore
from tests.storage.contract import StoreContract, listing, md5

pytestmark = pytest.mark.integration


@pytest.fixture
def files_credentials(azfiles_emulator):
    return parse_connection_string(azfiles_emulator.connection_string)


class TestFileShareStore(StoreContract):
    @pytest.fixture(params=["", "some/dir"], ids=["share", "directory"])
    def store(self, request, azfiles_share, files_credentials):
        _, share = azfiles_share
        store = FileShareStore(share, request.param, credentials=files_credentials)
        store.create_root()
        yield store
        store.close()

    @pytest.fixture
    def missing_store(self, azfiles_emulator, files_credentials):
        store = FileShareStore(f"missing-{uuid.uuid4().hex[:12]}", credentials=files_credentials)
        yield store
        store.delete_root()


@pytest.fixture
def sdk_share(azfiles_share):
    """The share through azure-storage-file-share: what other tools see."""
    from azure.storage.fileshare import ShareClient

    connection_string, share = azfiles_share
    client = ShareClient.from_connection_string(connection_string, share, connection_timeout=5, read_timeout=30)
    yield client
    client.close()


@pytest.fixture
def share_store(azfiles_share, files_credentials):
    store = FileShareStore(azfiles_share[1], credentials=files_credentials, block_size=64 * 1024)
    yield store
    store.close()


def test_md5_and_content_type_as_the_sdk_sees_them(sdk_share, share_store, tmp_path):
    big = bytes(range(256)) * 1000
    (tmp_path / "big").write_bytes(big)
    share_store.write("d/small.txt", b"small", content_type="text/plain")
    share_store.upload_file("d/big.bin", tmp_path / "big", content_type="application/x-big", max_concurrency=3)
    small = sdk_share.get_file_client("d/small.txt").get_file_properties()
    assert (small.size, small.content_settings.content_md5, small.content_settings.content_type) == (
        5,
        md5(b"small"),
        "text/plain",
    )
    big_props = sdk_share.get_file_client("d/big.bin").get_file_properties()
    assert (big_props.size, big_props.content_settings.content_md5) == (len(big), md5(big))
    assert sdk_share.get_file_client("d/big.bin").download_file().readall() == big


def test_files_written_by_the_sdk_are_listed_and_read(sdk_share, share_store):
    sdk_share.create_directory("from-sdk")
    sdk_share.get_file_client("from-sdk/a.txt").upload_file(b"sdk data")
    assert listing(share_store.list_dir("from-sdk")) == {"from-sdk/a.txt": (False, 8)}
    assert share_store.read("from-sdk/a.txt") == b"sdk data"
    assert share_store.stat("from-sdk/a.txt").content_md5 in (None, md5(b"sdk data"))


def test_append_keeps_the_content_type_and_drops_the_stale_md5(sdk_share, share_store):
    share_store.write("log.txt", b"first\n", content_type="text/plain")
    assert share_store.append("log.txt", b"second\n", 6) == 13
    props = sdk_share.get_file_client("log.txt").get_file_properties()
    assert (props.size, props.content_settings.content_type, props.content_settings.content_md5) == (
        13,
        "text/plain",
        None,
    )
    assert share_store.read("log.txt") == b"first\nsecond\n"


def test_a_missing_share_is_named(files_credentials):
    store = FileShareStore("no-such-share", credentials=files_credentials)
    with pytest.raises(FileNotFoundError) as info:
        store.write("x.txt", b"x")
    assert str(info.value) == "The share 'no-such-share' does not exist in storage account 'devstoreaccount1'."


def test_wrong_key_is_one_clear_line(azfiles_emulator, azfiles_share):
    wrong_key = base64.b64encode(b"not the right key at all, not at all!!").decode()
    credentials = parse_connection_string(azfiles_emulator.connection_string)
    credentials = StorageCredentials(
        account_name=credentials.account_name, account_key=wrong_key, file_endpoint=credentials.file_endpoint
    )
    with pytest.raises(StorageError) as info:
        FileShareStore(azfiles_share[1], credentials=credentials).write("x.txt", b"x")
    assert str(info.value) == (
        f"The storage account '{credentials.account_name}' rejected the credentials (AuthenticationFailed). "
        "Check --account-key or AZURE_STORAGE_KEY."
    )
    assert wrong_key not in str(info.value)


def test_open_store_for_the_emulator(azfiles_emulator, azfiles_share, files_credentials):
    share = azfiles_share[1]
    by_scheme = open_store(f"azurefile://{share}/logs/job", files_credentials)
    assert isinstance(by_scheme, FileShareStore)
    assert (by_scheme.share, by_scheme.directory) == (share, "logs/job")
    by_scheme.write("out.txt", b"hi")
    by_url = open_store(f"{files_credentials.file_endpoint}/{share}/logs", files_credentials)
    assert by_url.read("job/out.txt") == b"hi"
