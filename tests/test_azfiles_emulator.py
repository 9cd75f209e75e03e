"""The Azure Files emulator (batchai_cli/emulators/azfiles) against the real SDK and against recorded traffic
of the real service (tests/data/reference/azure-files-recordings)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.client
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import yaml
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest as SigningRequest
from azure.storage.fileshare import (
    AccessPolicy,
    AccountSasPermissions,
    ContentSettings,
    FileSasPermissions,
    NTFSAttributes,
    ResourceTypes,
    ShareClient,
    ShareFileClient,
    ShareSasPermissions,
    ShareServiceClient,
    generate_account_sas,
    generate_file_sas,
    generate_share_sas,
)
from azure.storage.fileshare._shared.authentication import SharedKeyCredentialPolicy

from batchai_cli.emulators.azfiles import DEFAULT_KEY, AzureFilesEmulator

REPO_ROOT = Path(__file__).resolve().parents[1]


# ---- helpers -----------------------------------------------------------------------------------


def _share(emulator: AzureFilesEmulator, name: str) -> ShareClient:
    return ShareClient.from_connection_string(emulator.connection_string, name)


def _sign(emulator: AzureFilesEmulator, method: str, url: str, headers: dict[str, str]) -> str:
    """The Authorization header the SDK itself would compute (an implementation independent of ours)."""
    request = SigningRequest(method, url, headers=headers)
    policy = SharedKeyCredentialPolicy(emulator.account_name, emulator.account_key)
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    return request.headers["Authorization"]


class Raw:
    """Hand-made HTTP requests on one keep-alive connection, SharedKey-signed unless told otherwise."""

    def __init__(self, emulator: AzureFilesEmulator) -> None:
        self.emulator = emulator
        self.conn = http.client.HTTPConnection(emulator.host, emulator.port, timeout=10)

    def __call__(
        self,
        method: str,
        path_and_query: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        *,
        sign: bool = True,
        version: str = "2025-01-05",
    ) -> tuple[int, dict[str, str], bytes]:
        headers = dict(headers or {})
        headers.setdefault("x-ms-version", version)
        headers.setdefault("x-ms-date", formatdate(usegmt=True))
        if method in ("PUT", "POST") or body:
            headers["Content-Length"] = str(len(body))
        if sign:
            url = f"http://{self.emulator.host}:{self.emulator.port}{path_and_query}"
            headers["Authorization"] = _sign(self.emulator, method, url, headers)
        self.conn.request(method, path_and_query, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def raw(azfiles_emulator):
    client = Raw(azfiles_emulator)
    yield client
    client.close()


@pytest.fixture
def share(azfiles_emulator, azfiles_share) -> ShareClient:
    return _share(azfiles_emulator, azfiles_share[1])


def _error_code(body: bytes) -> str:
    text = body.decode("utf-8-sig")
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def _ranges(file: ShareFileClient, **kwargs) -> list[tuple[int, int]]:
    return [(r.start, r.end) for r in file.list_ranges(**kwargs)]


def _future(minutes: int = 30) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=minutes)


# ---- the SDK end to end -------------------------------------------------------------------------


def test_upload_in_ranges_then_download_whole_and_ranged(share):
    data = os.urandom(3 * 1024 * 1024 + 123)
    file = share.get_file_client("data.bin")
    file.create_file(len(data))
    cut = [0, 1_000_000, 2_500_000, len(data)]
    for start, end in itertools.pairwise(cut):
        # validate_content makes the SDK send Content-MD5, which the emulator checks.
        file.upload_range(data[start:end], offset=start, length=end - start, validate_content=True)

    assert file.download_file().readall() == data
    assert file.download_file(offset=1_000_001, length=4096).readall() == data[1_000_001:1_004_097]
    # Reading past the end is cut at the end, as by the service.
    assert file.download_file(offset=len(data) - 10, length=100).readall() == data[-10:]
    # Several ranged GETs of 1 MiB each.
    assert file.download_file(max_concurrency=3).readall() == data
    assert _ranges(file) == [(0, len(data) - 1)]


def test_upload_file_in_chunks_and_chunked_download(azfiles_emulator, azfiles_share):
    connection_string, share_name = azfiles_share
    data = os.urandom(5 * 1024 * 1024 + 7)
    file = ShareFileClient.from_connection_string(
        connection_string, share_name, "big.bin", max_range_size=1024 * 1024, max_single_get_size=1024 * 1024
    )
    file.upload_file(data)
    downloader = file.download_file()
    assert downloader.size == len(data)
    assert b"".join(downloader.chunks()) == data


def test_range_md5_and_clear_and_range_list(share, raw, azfiles_emulator):
    file = share.get_file_client("sparse.bin")
    file.create_file(4096)
    file.upload_range(b"a" * 512, offset=0, length=512)
    file.upload_range(b"b" * 512, offset=1024, length=512)
    file.upload_range(b"c" * 512, offset=1536, length=512)
    assert _ranges(file) == [(0, 511), (1024, 2047)]
    file.clear_range(offset=1024, length=512)
    assert _ranges(file) == [(0, 511), (1536, 2047)]
    assert _ranges(file, results_per_page=1) == [(0, 511), (1536, 2047)]
    content = file.download_file().readall()
    assert content[:512] == b"a" * 512 and content[1024:1536] == b"\0" * 512 and content[1536:2048] == b"c" * 512

    path = f"/{azfiles_emulator.account_name}/{share.share_name}/sparse.bin"
    status, headers, body = raw("GET", path, {"x-ms-range": "bytes=0-511", "x-ms-range-get-content-md5": "true"})
    assert status == 206
    assert headers["content-md5"] == base64.b64encode(hashlib.md5(b"a" * 512).digest()).decode()

    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    status, headers, body = raw(
        "PUT", path + "?comp=range", {"x-ms-range": "bytes=0-3", "x-ms-write": "update", "Content-MD5": wrong}, b"abcd"
    )
    assert (status, headers["x-ms-error-code"]) == (400, "Md5Mismatch")
    assert b"<UserSpecifiedMd5>" in body and b"<ServerCalculatedMd5>" in body


def test_list_2500_entries_across_pages(share, azfiles_emulator):
    """Most entries are seeded straight into the share folder (they get default properties on first
    sight); a hundred go through the SDK from 10 threads at once."""
    folder = azfiles_emulator.root / share.share_name / "big"
    share.create_directory("big")
    expected = set()
    for i in range(2400):
        name = f"seed-{i:05d}"
        if i % 4:
            (folder / name).write_bytes(b"x" * (i % 7))
        else:
            (folder / name).mkdir()
        expected.add(name)
    big = share.get_directory_client("big")

    def create(i: int) -> str:
        if i % 2:
            big.get_subdirectory_client(f"Sdk-{i:04d}").create_directory()
        else:
            big.get_file_client(f"Sdk-{i:04d}").create_file(i)
        return f"Sdk-{i:04d}"

    # As many threads as the SDK's connection pool holds.
    with ThreadPoolExecutor(10) as pool:
        expected.update(pool.map(create, range(100)))

    pages = list(big.list_directories_and_files(results_per_page=1000).by_page())
    listed = [[item["name"] for item in page] for page in pages]
    assert [len(p) for p in listed] == [1000, 1000, 500]
    names = [n for page in listed for n in page]
    assert set(names) == expected and len(names) == len(expected)
    # The SDK puts a page's directories before its files; across pages the service order shows:
    # case-insensitive, each page after the previous one.
    for before, after in itertools.pairwise(listed):
        assert max(n.upper() for n in before) < min(n.upper() for n in after)
    # The default page size (5000) brings everything at once; the pager follows NextMarker when set.
    assert len(list(big.list_directories_and_files())) == 2500
    by_prefix = list(big.list_directories_and_files(name_starts_with="sdk-00", results_per_page=30))
    assert sorted(item["name"] for item in by_prefix) == [f"Sdk-{i:04d}" for i in range(100)]
    sizes = {
        item.name: getattr(item, "size", None) for item in big.list_directories_and_files(name_starts_with="seed-0000")
    }
    assert sizes == {f"seed-0000{i}": None if i % 4 == 0 else i % 7 for i in range(10)}


def test_list_with_details(share):
    share.create_directory("d")
    share.get_directory_client("d").upload_file("f.txt", b"12345")
    share.create_directory("d/sub")
    items = list(
        share.list_directories_and_files(
            "d", include=["timestamps", "Etag", "Attributes", "PermissionKey"], include_extended_info=True
        )
    )
    by_name = {item["name"]: item for item in items}
    assert by_name["f.txt"]["size"] == 5 and not by_name["f.txt"]["is_directory"]
    assert by_name["sub"]["is_directory"]
    for item in items:
        assert item["etag"] and item["last_modified"] and item["creation_time"] and item["permission_key"]
        assert item["file_id"]
    assert "Archive" in str(by_name["f.txt"]["file_attributes"])
    assert "Directory" in str(by_name["sub"]["file_attributes"])


def test_properties_metadata_and_smb_attributes(share):
    file = share.get_file_client("props.txt")
    created = dt.datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=dt.timezone.utc)
    file.create_file(
        10,
        content_settings=ContentSettings(content_type="text/plain", content_language="de", cache_control="no-cache"),
        metadata={"Owner": "me", "n": "1"},
        file_attributes=NTFSAttributes(read_only=True, archive=True),
        file_creation_time=created,
    )
    props = file.get_file_properties()
    assert props.size == 10
    assert props.metadata == {"Owner": "me", "n": "1"}
    assert props.content_settings.content_type == "text/plain"
    assert props.content_settings.content_language == "de"
    assert props.content_settings.cache_control == "no-cache"
    assert props.creation_time.replace(tzinfo=dt.timezone.utc) == created
    assert "ReadOnly" in props.file_attributes and "Archive" in props.file_attributes
    assert props.parent_id == "0" and props.file_id

    file.set_http_headers(ContentSettings(content_type="application/json", content_disposition="inline"))
    props = file.get_file_properties()
    assert props.content_settings.content_type == "application/json"
    assert props.content_settings.content_disposition == "inline"
    assert props.content_settings.content_language is None  # replaced, as by the service
    assert props.creation_time.replace(tzinfo=dt.timezone.utc) == created  # preserved

    file.set_file_metadata({"k": "v"})
    assert file.get_file_properties().metadata == {"k": "v"}

    file.resize_file(3)
    props = file.get_file_properties()
    assert props.size == 3 and props.content_settings.content_type == "application/json"
    file.resize_file(5000)
    assert file.download_file().readall() == b"\0" * 5000

    directory = share.create_directory("meta-dir", metadata={"a": "1"})
    assert directory.get_directory_properties().metadata == {"a": "1"}
    directory.set_directory_metadata({"b": "2"})
    assert directory.get_directory_properties().metadata == {"b": "2"}

    share.set_share_metadata({"team": "x"})
    share.set_share_quota(10)
    share_props = share.get_share_properties()
    assert share_props.metadata == {"team": "x"} and share_props.quota == 10


def test_share_listing_and_errors(azfiles_emulator):
    service = ShareServiceClient.from_connection_string(azfiles_emulator.connection_string)
    prefix = f"ls{uuid.uuid4().hex[:8]}"
    for i in range(5):
        service.create_share(f"{prefix}-{i}", metadata={"i": str(i)})
    with pytest.raises(ResourceExistsError) as exc:
        service.create_share(f"{prefix}-0")
    assert exc.value.error_code == "ShareAlreadyExists"

    shares = list(service.list_shares(name_starts_with=prefix, include_metadata=True, results_per_page=2))
    assert [s.name for s in shares] == [f"{prefix}-{i}" for i in range(5)]
    assert [s.metadata for s in shares] == [{"i": str(i)} for i in range(5)]

    for i in range(5):
        service.delete_share(f"{prefix}-{i}")
    with pytest.raises(ResourceNotFoundError) as exc:
        service.get_share_client(f"{prefix}-0").get_share_properties()
    assert exc.value.error_code == "ShareNotFound"
    with pytest.raises(HttpResponseError) as exc:
        service.create_share("Bad_Name")
    assert exc.value.error_code == "InvalidResourceName"


def test_directory_and_file_errors(share):
    share.create_directory("a")
    with pytest.raises(ResourceExistsError) as exc:
        share.create_directory("a")
    assert exc.value.error_code == "ResourceAlreadyExists"
    with pytest.raises(ResourceNotFoundError) as exc:
        share.create_directory("missing/child")
    assert exc.value.error_code == "ParentNotFound"

    share.get_directory_client("a").upload_file("f", b"x")
    with pytest.raises(ResourceExistsError) as exc:
        share.get_directory_client("a").delete_directory()
    assert exc.value.error_code == "DirectoryNotEmpty"

    with pytest.raises(ResourceNotFoundError) as exc:
        share.get_file_client("a/nope").get_file_properties()
    assert exc.value.error_code == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as exc:
        share.get_file_client("nope/nope").download_file()
    assert exc.value.error_code == "ParentNotFound"
    with pytest.raises(ResourceNotFoundError):
        share.get_file_client("a/nope").delete_file()
    assert share.get_file_client("a/f").exists()
    assert not share.get_file_client("a/nope").exists()
    assert share.get_directory_client("a").exists() and not share.get_directory_client("b").exists()

    file = share.get_file_client("a/f")
    with pytest.raises(HttpResponseError) as exc:
        file.download_file(offset=5, length=1)
    assert exc.value.status_code == 416 and exc.value.error_code == "InvalidRange"
    with pytest.raises(HttpResponseError) as exc:
        file.upload_range(b"abc", offset=0, length=3)  # the file holds 1 byte
    assert exc.value.status_code == 416

    share.get_file_client("a/f").delete_file()
    share.get_directory_client("a").delete_directory()
    assert not share.get_directory_client("a").exists()


def test_empty_file_download(share):
    file = share.get_file_client("empty")
    file.create_file(0)
    # The SDK first asks for a range, gets 416 on an empty file, and retries without one.
    assert file.download_file().readall() == b""


def test_names_are_case_insensitive_and_case_preserving(share):
    share.create_directory("CamelDir")
    with pytest.raises(ResourceExistsError):
        share.create_directory("cameldir")
    share.get_directory_client("cameldir").upload_file("File.TXT", b"data")
    assert share.get_file_client("CAMELDIR/file.txt").download_file().readall() == b"data"
    assert [item["name"] for item in share.list_directories_and_files()] == ["CamelDir"]
    assert [item["name"] for item in share.list_directories_and_files("CamelDir")] == ["File.TXT"]


def test_unusual_names_round_trip(share):
    names = ["with space", "ümlaut-ö", "plus+and&amp", "percent%41", "semi;colon", "hash#tag", "q'uote", "日本語"]
    for name in names:
        share.get_file_client(name).upload_file(name.encode())
    listed = sorted(item["name"] for item in share.list_directories_and_files())
    assert listed == sorted(names)
    for name in names:
        assert share.get_file_client(name).download_file().readall() == name.encode()


def test_rename_and_leases(share):
    share.create_directory("src")
    share.get_directory_client("src").upload_file("f.txt", b"content")
    moved = share.get_directory_client("src").rename_directory("dst")
    assert moved.directory_path == "dst"
    assert share.get_file_client("dst/f.txt").download_file().readall() == b"content"
    renamed = share.get_file_client("dst/f.txt").rename_file("dst/g.txt")
    assert renamed.download_file().readall() == b"content"
    share.get_directory_client("dst").rename_directory("DST")
    assert [item["name"] for item in share.list_directories_and_files()] == ["DST"]
    assert not share.get_directory_client("src").exists()

    lease = renamed.acquire_lease()
    with pytest.raises(HttpResponseError) as exc:
        renamed.upload_range(b"x", offset=0, length=1)
    assert exc.value.status_code == 412 and exc.value.error_code == "LeaseIdMissing"
    renamed.upload_range(b"X", offset=0, length=1, lease=lease)
    assert renamed.get_file_properties().lease.state == "leased"
    lease.release()
    renamed.upload_range(b"Y", offset=1, length=1)
    assert renamed.download_file().readall() == b"XYntent"


def test_concurrent_range_writes_to_one_file(share):
    file = share.get_file_client("parallel.bin")
    chunk = 64 * 1024
    file.create_file(32 * chunk)

    def write(i: int) -> None:
        file.upload_range(bytes([i]) * chunk, offset=i * chunk, length=chunk)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(32)))
    assert file.download_file().readall() == b"".join(bytes([i]) * chunk for i in range(32))


def test_share_stats_and_permissions(share):
    share.get_file_client("f").upload_file(b"x" * 1000)
    assert share.get_share_stats() == 1000
    sddl = "O:BAG:SYD:(A;;FA;;;BA)"
    key = share.create_permission_for_share(sddl)
    assert share.get_permission_for_share(key) == sddl
    file = share.get_file_client("f")
    file.set_http_headers(ContentSettings(), permission_key=key)
    assert file.get_file_properties().permission_key == key


# ---- authentication -----------------------------------------------------------------------------


def test_wrong_key_raises_client_authentication_error(azfiles_emulator, azfiles_share):
    wrong = base64.b64encode(b"not the key" * 6).decode()
    connection_string = azfiles_emulator.connection_string.replace(azfiles_emulator.account_key, wrong)
    client = ShareClient.from_connection_string(connection_string, azfiles_share[1])
    with pytest.raises(ClientAuthenticationError) as exc:
        client.get_share_properties()
    assert exc.value.status_code == 403 and exc.value.error_code == "AuthenticationFailed"


def test_anonymous_and_tampered_requests(raw, azfiles_emulator, azfiles_share):
    path = f"/{azfiles_emulator.account_name}/{azfiles_share[1]}?restype=share"
    status, headers, body = raw("GET", path, sign=False)
    assert (status, headers["x-ms-error-code"]) == (401, "NoAuthenticationInformation")
    assert headers["www-authenticate"].startswith("Bearer ")

    status, headers, body = raw(
        "GET", path, {"Authorization": f"SharedKey {azfiles_emulator.account_name}:AAAA"}, sign=False
    )
    assert (status, _error_code(body)) == (403, "AuthenticationFailed")
    assert b"<AuthenticationErrorDetail>" in body
    # The connection survives error responses (keep-alive with a Content-Length on every reply).
    status, _, _ = raw("GET", path)
    assert status == 200

    stale = formatdate(dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc).timestamp(), usegmt=True)
    status, headers, _ = raw("GET", path, {"x-ms-date": stale})
    assert (status, headers["x-ms-error-code"]) == (403, "AuthenticationFailed")


def test_file_sas_read_with_urllib(share, azfiles_emulator):
    file = share.get_file_client("docs/report.txt")
    share.create_directory("docs")
    file.upload_file(b"hello over SAS")
    sas = generate_file_sas(
        azfiles_emulator.account_name,
        share.share_name,
        ["docs", "report.txt"],
        azfiles_emulator.account_key,
        permission=FileSasPermissions(read=True),
        expiry=_future(),
        content_disposition="attachment; filename=r.txt",
    )
    with urllib.request.urlopen(f"{file.url}?{sas}", timeout=10) as response:
        assert response.status == 200
        assert response.read() == b"hello over SAS"
        assert response.headers["Content-Disposition"] == "attachment; filename=r.txt"

    # The SAS names one file: another path does not match the signature.
    other = share.get_file_client("docs/other.txt")
    other.upload_file(b"secret")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{other.url}?{sas}", timeout=10)
    assert exc.value.code == 403 and exc.value.headers["x-ms-error-code"] == "AuthenticationFailed"

    tampered = sas.replace("sp=r", "sp=rw")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{file.url}?{tampered}", timeout=10)
    assert exc.value.code == 403


def test_expired_sas_is_refused(share, azfiles_emulator):
    file = share.get_file_client("f.txt")
    file.upload_file(b"x")
    sas = generate_file_sas(
        azfiles_emulator.account_name,
        share.share_name,
        ["f.txt"],
        azfiles_emulator.account_key,
        permission="r",
        expiry=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1),
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{file.url}?{sas}", timeout=10)
    assert exc.value.code == 403
    body = exc.value.read()
    assert _error_code(body) == "AuthenticationFailed" and b"time frame" in body

    not_yet = generate_file_sas(
        azfiles_emulator.account_name,
        share.share_name,
        ["f.txt"],
        azfiles_emulator.account_key,
        permission="r",
        start=_future(10),
        expiry=_future(20),
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{file.url}?{not_yet}", timeout=10)
    assert exc.value.code == 403


def test_share_sas_permissions(share, azfiles_emulator):
    share.create_directory("d")
    share.get_directory_client("d").upload_file("f.txt", b"data")
    read_list = generate_share_sas(
        azfiles_emulator.account_name,
        share.share_name,
        azfiles_emulator.account_key,
        permission=ShareSasPermissions(read=True, list=True),
        expiry=_future(),
    )
    client = ShareClient(azfiles_emulator.endpoint, share.share_name, credential=read_list)
    assert [item["name"] for item in client.list_directories_and_files("d")] == ["f.txt"]
    assert client.get_file_client("d/f.txt").download_file().readall() == b"data"
    with pytest.raises(HttpResponseError) as exc:
        client.get_directory_client("d").upload_file("g.txt", b"nope")
    assert exc.value.status_code == 403 and exc.value.error_code == "AuthorizationPermissionMismatch"
    with pytest.raises(HttpResponseError) as exc:
        client.get_file_client("d/f.txt").delete_file()
    assert exc.value.error_code == "AuthorizationPermissionMismatch"
    # A share SAS does not reach share-level operations.
    with pytest.raises(HttpResponseError) as exc:
        client.set_share_metadata({"a": "b"})
    assert exc.value.status_code == 403

    writer = generate_share_sas(
        azfiles_emulator.account_name,
        share.share_name,
        azfiles_emulator.account_key,
        permission=ShareSasPermissions(create=True, write=True, delete=True),
        expiry=_future(),
    )
    client = ShareClient(azfiles_emulator.endpoint, share.share_name, credential=writer)
    client.get_directory_client("d").upload_file("g.txt", b"yes")
    client.get_file_client("d/g.txt").delete_file()
    with pytest.raises(HttpResponseError) as exc:
        list(client.list_directories_and_files("d"))
    assert exc.value.error_code == "AuthorizationPermissionMismatch"


def test_account_sas(azfiles_emulator):
    name = f"acct-{uuid.uuid4().hex[:10]}"
    everything = generate_account_sas(
        azfiles_emulator.account_name,
        azfiles_emulator.account_key,
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, list=True, create=True, delete=True),
        expiry=_future(),
    )
    service = ShareServiceClient(azfiles_emulator.endpoint, credential=everything)
    service.create_share(name)
    assert name in [s.name for s in service.list_shares(name_starts_with="acct-")]
    service.get_share_client(name).get_file_client("f").upload_file(b"abc")

    objects_only = generate_account_sas(
        azfiles_emulator.account_name,
        azfiles_emulator.account_key,
        ResourceTypes(object=True),
        AccountSasPermissions(read=True),
        expiry=_future(),
    )
    reader = ShareServiceClient(azfiles_emulator.endpoint, credential=objects_only)
    assert reader.get_share_client(name).get_file_client("f").download_file().readall() == b"abc"
    with pytest.raises(HttpResponseError) as exc:
        list(reader.list_shares())
    assert exc.value.error_code == "AuthorizationResourceTypeMismatch"
    with pytest.raises(HttpResponseError) as exc:
        reader.get_share_client(name).get_file_client("f").upload_range(b"x", 0, 1)
    assert exc.value.error_code == "AuthorizationPermissionMismatch"
    service.delete_share(name)


def test_read_only_file_sas_cannot_write(share, azfiles_emulator):
    file = share.get_file_client("ro.txt")
    file.upload_file(b"read only")
    sas = generate_file_sas(
        azfiles_emulator.account_name,
        share.share_name,
        ["ro.txt"],
        azfiles_emulator.account_key,
        permission=FileSasPermissions(read=True),
        expiry=_future(),
    )
    reader = ShareFileClient(azfiles_emulator.endpoint, share.share_name, "ro.txt", credential=sas)
    assert reader.download_file().readall() == b"read only"
    with pytest.raises(HttpResponseError) as exc:
        reader.upload_range(b"X", offset=0, length=1)
    assert exc.value.status_code == 403 and exc.value.error_code == "AuthorizationPermissionMismatch"
    with pytest.raises(HttpResponseError) as exc:
        reader.delete_file()
    assert exc.value.error_code == "AuthorizationPermissionMismatch"


def test_sas_with_a_stored_access_policy(share, azfiles_emulator):
    file = share.get_file_client("f.txt")
    file.upload_file(b"by policy")
    share.set_share_access_policy(
        {"readers": AccessPolicy(permission=ShareSasPermissions(read=True), expiry=_future(), start=_future(-5))}
    )
    assert [p.id for p in share.get_share_access_policy()["signed_identifiers"]] == ["readers"]
    sas = generate_share_sas(
        azfiles_emulator.account_name, share.share_name, azfiles_emulator.account_key, policy_id="readers"
    )
    with urllib.request.urlopen(f"{file.url}?{sas}", timeout=10) as response:
        assert response.read() == b"by policy"
    reader = ShareFileClient(azfiles_emulator.endpoint, share.share_name, "f.txt", credential=sas)
    with pytest.raises(HttpResponseError) as exc:
        reader.upload_range(b"x", offset=0, length=1)
    assert exc.value.error_code == "AuthorizationPermissionMismatch"
    unknown = generate_share_sas(
        azfiles_emulator.account_name, share.share_name, azfiles_emulator.account_key, policy_id="nobody"
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{file.url}?{unknown}", timeout=10)
    assert exc.value.code == 403
    # Dropping the policy revokes the tokens that name it.
    share.set_share_access_policy({})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(f"{file.url}?{sas}", timeout=10)
    assert exc.value.code == 403


def test_copy_within_the_account(share):
    source = share.get_file_client("src.txt")
    source.upload_file(b"copy me", metadata={"a": "1"}, content_settings=ContentSettings(content_type="text/plain"))
    share.create_directory("out")
    target = share.get_file_client("out/dst.txt")
    result = target.start_copy_from_url(source.url)
    assert result["copy_status"] == "success" and result["copy_id"]
    props = target.get_file_properties()
    assert props.copy.status == "success" and props.copy.id == result["copy_id"]
    assert props.metadata == {"a": "1"} and props.content_settings.content_type == "text/plain"
    assert target.download_file().readall() == b"copy me"
    target.upload_range(b"C", offset=0, length=1)
    assert target.get_file_properties().copy.status is None
    with pytest.raises(ResourceNotFoundError):
        share.get_file_client("x").start_copy_from_url(share.get_file_client("missing").url)


# ---- the wire ------------------------------------------------------------------------------------


def test_paths_never_leave_the_share(raw, azfiles_emulator, azfiles_share):
    account, share_name = azfiles_emulator.account_name, azfiles_share[1]
    outside = azfiles_emulator.root / "escaped"
    for path in (
        f"/{account}/{share_name}/../escaped",
        f"/{account}/{share_name}/%2e%2e/escaped",
        f"/{account}/{share_name}/a%2F..%2F..%2Fescaped",
        f"/{account}/{share_name}/..%5Cescaped",
    ):
        status, headers, _ = raw("PUT", path, {"x-ms-type": "file", "x-ms-content-length": "1"})
        assert status in (400, 404), path
        assert headers["x-ms-error-code"] in ("InvalidResourceName", "ParentNotFound", "InvalidUri"), path
    assert not outside.exists()
    assert not any(p.name == "escaped" for p in azfiles_emulator.root.rglob("*"))
    # A symlink planted in the share folder is not followed.
    (azfiles_emulator.root / share_name / "link").symlink_to(azfiles_emulator.root)
    status, headers, _ = raw("GET", f"/{account}/{share_name}/link/{share_name}?restype=directory")
    assert status == 404


def test_bad_headers_and_query_values(raw, azfiles_emulator, azfiles_share):
    base = f"/{azfiles_emulator.account_name}/{azfiles_share[1]}"
    status, headers, body = raw("PUT", base + "/f", {"x-ms-type": "file", "x-ms-content-length": "abc"})
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")
    assert b"<HeaderName>x-ms-content-length</HeaderName>" in body
    status, headers, _ = raw("PUT", base + "/f", {"x-ms-content-length": "1"})
    assert (status, headers["x-ms-error-code"]) == (400, "MissingRequiredHeader")
    status, headers, _ = raw("GET", base + "?restype=directory&comp=list&maxresults=0")
    assert (status, headers["x-ms-error-code"]) == (400, "OutOfRangeQueryParameterValue")
    status, headers, _ = raw("GET", base + "?restype=directory&comp=list&marker=garbage")
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidQueryParameterValue")
    status, headers, _ = raw("GET", base + "?restype=share&comp=lease1")
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidQueryParameterValue")
    status, headers, _ = raw("PUT", base + "?restype=directory", {"x-ms-meta-bad-name": "x"})
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidMetadata")
    status, headers, _ = raw("GET", base + "?restype=share", {"x-ms-version": "latest"})
    assert (status, headers["x-ms-error-code"]) == (400, "InvalidHeaderValue")


def test_too_large_body_is_refused_and_the_connection_closed(raw, azfiles_emulator, azfiles_share):
    path = f"/{azfiles_emulator.account_name}/{azfiles_share[1]}/big"
    assert raw("PUT", path, {"x-ms-type": "file", "x-ms-content-length": str(8 * 1024 * 1024)})[0] == 201
    body = b"z" * (5 * 1024 * 1024)
    headers = {"x-ms-range": f"bytes=0-{len(body) - 1}", "x-ms-write": "update"}
    status, headers, _ = raw("PUT", path + "?comp=range", headers, body)
    assert (status, headers["x-ms-error-code"], headers["connection"]) == (413, "RequestBodyTooLarge", "close")


def test_chunked_request_body(raw, azfiles_emulator, azfiles_share):
    path = f"/{azfiles_emulator.account_name}/{azfiles_share[1]}/chunked"
    assert raw("PUT", path, {"x-ms-type": "file", "x-ms-content-length": "10"})[0] == 201
    headers = {"x-ms-range": "bytes=0-9", "x-ms-write": "update", "x-ms-version": "2025-01-05"}
    headers["x-ms-date"] = formatdate(usegmt=True)
    url = f"http://{azfiles_emulator.host}:{azfiles_emulator.port}{path}?comp=range"
    # Chunked bodies carry no Content-Length, so none is signed.
    headers["Authorization"] = _sign(azfiles_emulator, "PUT", url, headers)
    raw.conn.putrequest("PUT", path + "?comp=range")
    for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
        raw.conn.putheader(name, value)
    raw.conn.endheaders()
    raw.conn.send(b"4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n")
    response = raw.conn.getresponse()
    response.read()
    assert response.status == 201
    assert raw("GET", path)[2] == b"0123456789"


def test_persistence_and_seeded_folders(tmp_path):
    root = tmp_path / "root"
    with AzureFilesEmulator(root) as emulator:
        share = _share(emulator, "keep")
        share.create_share()
        share.get_file_client("f.txt").upload_file(b"kept", metadata={"m": "1"})
        etag = share.get_file_client("f.txt").get_file_properties().etag
    (root / "keep" / "seeded").mkdir()
    (root / "keep" / "seeded" / "s.bin").write_bytes(b"seed")
    (root / "planted").mkdir()
    with AzureFilesEmulator(root) as emulator:
        share = _share(emulator, "keep")
        props = share.get_file_client("f.txt").get_file_properties()
        assert props.metadata == {"m": "1"} and props.etag == etag
        assert share.get_file_client("seeded/s.bin").download_file().readall() == b"seed"
        service = ShareServiceClient.from_connection_string(emulator.connection_string)
        assert sorted(s.name for s in service.list_shares()) == ["keep", "planted"]
        idle = Raw(emulator)
        assert idle("GET", f"/{emulator.account_name}/keep?restype=share")[0] == 200
    # Stopping also drops idle keep-alive connections, and the port stops listening.
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        idle("GET", f"/{emulator.account_name}/keep?restype=share")
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(emulator.host, emulator.port, timeout=2).connect()


def test_run_as_a_separate_process(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "batchai_cli.emulators.azfiles", "--root", str(tmp_path / "r"), "--key", DEFAULT_KEY],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        connection_string = process.stdout.readline().strip()
        assert connection_string.startswith("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;")
        service = ShareServiceClient.from_connection_string(connection_string)
        service.create_share("from-subprocess")
        assert [s.name for s in service.list_shares()] == ["from-subprocess"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert (tmp_path / "r" / "from-subprocess").is_dir()


# ---- recorded traffic of the real service ------------------------------------------------------

RECORDINGS = Path(__file__).resolve().parent / "data" / "reference" / "azure-files-recordings"


@dataclass
class Exchange:
    """One recorded request and the real service's response."""

    method: str
    path: str  # percent-encoded, without the account (the recordings use host-style URLs)
    query: str
    headers: dict[str, str]
    body: bytes
    status: int
    response_headers: dict[str, str]  # lowercased names
    response_body: bytes | None  # None when the recording does not hold it


def _text_or_base64(value: str | None, *, xml: bool) -> bytes:
    if value is None:
        return b""
    return value.encode("utf-8") if xml else base64.b64decode(value)


def load_recording(path: Path) -> list[Exchange]:
    exchanges = []
    if path.suffix == ".yaml":
        # libyaml's loader: the pure-Python one takes seconds over all the recordings.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for item in yaml.load(path.read_text(), Loader=loader)["interactions"]:
            request, response = item["request"], item["response"]
            url = urlsplit(request["uri"])
            body = request["body"] or b""
            answer = response["body"]["string"]
            exchanges.append(
                Exchange(
                    request["method"],
                    url.path or "/",
                    url.query,
                    {k: v[0] for k, v in request["headers"].items()},
                    body.encode() if isinstance(body, str) else body,
                    response["status"]["code"],
                    {k.lower(): v[0] for k, v in response["headers"].items()},
                    answer.encode("utf-8") if isinstance(answer, str) else answer,
                )
            )
        return exchanges
    for entry in json.loads(path.read_text())["Entries"]:
        url = urlsplit(entry["RequestUri"])
        headers = {k.lower(): " ".join(v) if isinstance(v, list) else v for k, v in entry["ResponseHeaders"].items()}
        answer = entry["ResponseBody"]
        xml = "xml" in headers.get("content-type", "") or "json" in headers.get("content-type", "")
        exchanges.append(
            Exchange(
                entry["RequestMethod"],
                url.path or "/",
                url.query,
                dict(entry["RequestHeaders"]),
                _text_or_base64(entry["RequestBody"], xml=False),
                int(entry["StatusCode"]),
                headers,
                _text_or_base64(answer, xml=xml) if answer is not None else b"",
            )
        )
    return exchanges


class Correlation:
    """Values that differ between runs (ETags, file ids, SMB times, permission keys) must still
    correspond one to one: where the service answered with the same value twice, so must we."""

    def __init__(self) -> None:
        self.forward: dict[tuple[str, str], str] = {}
        self.backward: dict[tuple[str, str], str] = {}

    def check(self, kind: str, recorded: str, actual: str | None, where: str) -> None:
        assert actual is not None, f"{where}: no {kind} where the service sent {recorded!r}"
        known = self.forward.setdefault((kind, recorded), actual)
        assert known == actual, f"{where}: {kind} {recorded!r} was {known!r} before, now {actual!r}"
        back = self.backward.setdefault((kind, actual), recorded)
        assert back == recorded, f"{where}: {kind} {actual!r} stood for {back!r} before, now for {recorded!r}"


# Response headers whose values must be equal to the recorded ones / must correspond one to one.
EXACT_HEADERS = {
    "accept-ranges",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-range",
    "content-type",
    "server",
    "x-ms-access-tier",
    "x-ms-client-request-id",
    "x-ms-content-length",
    "x-ms-error-code",
    "x-ms-file-attributes",
    "x-ms-has-immutability-policy",
    "x-ms-has-legal-hold",
    "x-ms-lease-state",
    "x-ms-lease-status",
    "x-ms-request-server-encrypted",
    "x-ms-server-encrypted",
    "x-ms-share-quota",
    "x-ms-type",
    "x-ms-version",
}
CORRELATED_HEADERS = {
    "etag": "etag",
    "x-ms-file-id": "id",
    "x-ms-file-parent-id": "id",
    "x-ms-file-permission-key": "permission-key",
    "x-ms-file-creation-time": "time",
    "x-ms-file-last-write-time": "time",
    "x-ms-file-change-time": "time",
}
# Sent by the service but not by the emulator, which always answers with a Content-Length and
# answers no CORS.
NOT_EMULATED_HEADERS = {"transfer-encoding", "vary", "access-control-allow-origin", "access-control-expose-headers"}
CORRELATED_ELEMENTS = {
    "FileId": "id",
    "DirectoryId": "id",
    "Etag": "etag",
    "PermissionKey": "permission-key",
    "CreationTime": "time",
    "LastWriteTime": "time",
    "ChangeTime": "time",
}
# Second-resolution clock readings and the endpoint URL cannot match.
UNCOMPARABLE_ELEMENTS = {"Last-Modified", "LastAccessTime", "AccessTierChangeTime"}


def compare_xml(recorded: bytes, actual: bytes, correlation: Correlation, where: str) -> None:
    expected_root = ET.fromstring(recorded.decode("utf-8-sig"))
    actual_root = ET.fromstring(actual.decode("utf-8-sig"))

    def walk(expected: ET.Element, got: ET.Element, trail: str) -> None:
        here = f"{where} {trail}/{expected.tag}"
        assert got.tag == expected.tag, f"{here}: element {got.tag} where the service has {expected.tag}"
        assert set(got.attrib) == set(expected.attrib), f"{here}: attributes {got.attrib} vs {expected.attrib}"
        for name, value in expected.attrib.items():
            if name != "ServiceEndpoint":
                assert got.attrib[name] == value, f"{here}@{name}"
        assert [c.tag for c in got] == [c.tag for c in expected], f"{here}: children differ"
        text, got_text = (expected.text or "").strip(), (got.text or "").strip()
        if expected.tag in CORRELATED_ELEMENTS and text:
            correlation.check(CORRELATED_ELEMENTS[expected.tag], text, got_text, here)
        elif expected.tag == "Message":
            assert got_text.split("\n")[0] == text.split("\n")[0], here
            assert re.fullmatch(r"[^\n]*\nRequestId:[0-9a-f-]{36}\nTime:\S{28}", got_text), here
        elif expected.tag not in UNCOMPARABLE_ELEMENTS:
            assert got_text == text, f"{here}: {got_text!r} where the service has {text!r}"
        for child_expected, child_got in zip(expected, got, strict=True):
            walk(child_expected, child_got, f"{trail}/{expected.tag}")

    walk(expected_root, actual_root, "")


class Replayer:
    """Sends recorded requests to the emulator (re-dated and re-signed with its key, SAS tokens
    re-issued) and holds the answers against the recorded ones."""

    def __init__(self, emulator: AzureFilesEmulator) -> None:
        self.drop = {"authorization", "host", "connection", "content-length", "x-ms-date", "accept-encoding"}
        self.emulator = emulator
        self.raw = Raw(emulator)
        self.correlation = Correlation()

    def _sas_query(self, exchange: Exchange) -> str:
        """The recorder replaced SAS values by placeholders: issue a real token with the same rights."""
        params = dict(parse_qsl(exchange.query))
        segments = [unquote(s) for s in exchange.path.strip("/").split("/")]
        token = generate_file_sas(
            self.emulator.account_name,
            segments[0],
            segments[1:],
            self.emulator.account_key,
            permission=params["sp"],
            expiry=_future(),
        )
        assert params["sr"] == "f"
        return token

    def send(self, exchange: Exchange) -> tuple[int, dict[str, str], bytes]:
        headers = {k: v for k, v in exchange.headers.items() if k.lower() not in self.drop}
        query = exchange.query
        signed = "sig=" not in query
        if not signed:
            query = self._sas_query(exchange)
        target = f"/{self.emulator.account_name}{exchange.path}" + (f"?{query}" if query else "")
        version = headers.pop("x-ms-version")
        return self.raw(exchange.method, target, headers, exchange.body, sign=signed, version=version)

    def check(self, exchange: Exchange, where: str, recorded_account: str) -> None:
        status, headers, body = self.send(exchange)
        # Share list markers hold the account name ("/account/share").
        body = body.replace(f">/{self.emulator.account_name}/".encode(), f">/{recorded_account}/".encode())
        where = f"{where} {exchange.method} {exchange.path}?{exchange.query}"
        assert status == exchange.status, f"{where}: {status} {body[:300]!r}, the service answered {exchange.status}"
        recorded = exchange.response_headers
        missing = set(recorded) - set(headers) - NOT_EMULATED_HEADERS
        if "transfer-encoding" in recorded or exchange.method == "HEAD":
            missing.discard("content-length")
        assert not missing, f"{where}: headers {sorted(missing)} missing"
        for name, value in recorded.items():
            if name in EXACT_HEADERS or name.startswith("x-ms-meta-"):
                if name == "content-length" and exchange.method == "HEAD" and exchange.status >= 400:
                    continue
                assert headers.get(name) == value, f"{where}: {name}: {headers.get(name)!r}, recorded {value!r}"
            elif name in CORRELATED_HEADERS:
                self.correlation.check(CORRELATED_HEADERS[name], value, headers.get(name), f"{where} {name}")
        extra_meta = {n for n in headers if n.startswith("x-ms-meta-")} - set(recorded)
        assert not extra_meta, f"{where}: unexpected {extra_meta}"
        if exchange.response_body and exchange.method != "HEAD":
            if "xml" in recorded.get("content-type", ""):
                compare_xml(exchange.response_body, body, self.correlation, where)
            elif not exchange.response_body.startswith(b"__bodyStream__"):
                assert body == exchange.response_body, f"{where}: body differs"

    def close(self) -> None:
        self.raw.close()


def _recording_ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


REPLAYED = sorted(
    [
        *(RECORDINGS / "azure-storage-python").glob("*.yaml"),
        *(RECORDINGS / "azure-sdk-for-python").glob("*.json"),
        *(RECORDINGS / "azure-sdk-assets").glob("*.json"),
        RECORDINGS / "azure-sdk-for-js" / "recording_can_get_a_directory_client_for_root_directory.json",
    ]
)


@pytest.fixture(scope="module")
def replay_emulator(tmp_path_factory):
    with AzureFilesEmulator(tmp_path_factory.mktemp("replay")) as emulator:
        yield emulator


def _target(exchange: Exchange) -> tuple[tuple[str, ...], str]:
    """(share, dir, ..., name) of a request and the kind of item it addresses."""
    names = tuple(s for s in unquote(exchange.path).split("/") if s)
    restype = dict(parse_qsl(exchange.query)).get("restype")
    kind = {"share": "share", "directory": "dir"}.get(restype or "", "file")
    return names, "share" if len(names) == 1 else kind


def _is_create(exchange: Exchange) -> bool:
    query = dict(parse_qsl(exchange.query))
    if exchange.method != "PUT" or "comp" in query:
        return False
    return query.get("restype") in ("share", "directory") or "x-ms-type" in {k.lower() for k in exchange.headers}


def seed_unrecorded_setup(root: Path, exchanges: list[Exchange]) -> None:
    """The recorders left out the tests' setUp (shares, folders and files made beforehand). What had to
    exist follows from the recorded answers; it is put straight into the emulator's folder."""
    present: set[tuple[str, ...]] = set()
    touched: set[tuple[str, ...]] = set()
    files: dict[tuple[str, ...], tuple[int, list[tuple[int, bytes]]]] = {}

    def need(path: tuple[str, ...], kind: str, exchange: Exchange) -> None:
        if path in present or path in touched or not path:
            return
        present.add(path)
        touched.add(path)
        folder = root.joinpath(*path)
        if kind != "file":
            folder.mkdir(parents=True, exist_ok=True)
            return
        headers = exchange.response_headers
        size = int(headers.get("content-range", "/").rsplit("/", 1)[1] or headers.get("content-length", 0))
        chunks = []
        if exchange.status == 206 and exchange.response_body:
            chunks.append((int(headers["content-range"].split()[1].split("-")[0]), exchange.response_body))
        elif exchange.status == 200 and exchange.method == "GET":
            chunks.append((0, exchange.response_body or b""))
        files[path] = (size, chunks)

    for exchange in exchanges:
        path, kind = _target(exchange)
        if not path:
            continue
        code = exchange.response_headers.get("x-ms-error-code")
        ok = exchange.status < 300
        if code == "ParentNotFound":
            need(path[:1], "share", exchange)
        elif ok or code in ("ResourceNotFound", "ResourceAlreadyExists", "ShareAlreadyExists", "InvalidRange"):
            for depth in range(1, len(path)):
                need(path[:depth], "share" if depth == 1 else "dir", exchange)
            if (ok and not _is_create(exchange)) or code in ("ResourceAlreadyExists", "InvalidRange"):
                need(path, kind, exchange)
        touched.add(path)
        if ok and _is_create(exchange):
            present.add(path)
        elif ok and exchange.method == "DELETE":
            present.discard(path)
    for path, (size, chunks) in files.items():
        with open(root.joinpath(*path), "wb") as f:
            f.truncate(size)
            for offset, data in chunks:
                f.seek(offset)
                f.write(data)


@pytest.mark.parametrize("recording", REPLAYED, ids=_recording_ids(REPLAYED))
def test_replay_recording(recording, replay_emulator):
    # Every recording starts from an empty account.
    service = ShareServiceClient.from_connection_string(replay_emulator.connection_string)
    for item in service.list_shares():
        service.delete_share(item.name)
    exchanges = load_recording(recording)
    recorded_account = recording.read_text().split("://", 1)[1].split(".", 1)[0]
    seed_unrecorded_setup(replay_emulator.root, exchanges)
    replayer = Replayer(replay_emulator)
    try:
        for number, exchange in enumerate(exchanges):
            replayer.check(exchange, f"#{number}", recorded_account)
    finally:
        replayer.close()


def load_cpp_recording(
    path: Path, *, file_size: int, content: bytes = b"", get_range: str | None = None
) -> list[Exchange]:
    """The old C++ recorder kept responses whole but only three request headers and no bodies. The
    requests are rebuilt the way the C++ SDK sends them; the file content and the ranges asked for
    follow from the test's parameters (and are checked by the recorded Content-MD5s)."""
    smb = {"x-ms-file-creation-time": "now", "x-ms-file-last-write-time": "now", "x-ms-file-permission": "inherit"}
    exchanges, deleted, put_offset = [], set(), 0
    for record in json.loads(path.read_text())["networkCallRecords"]:
        url = urlsplit(record["Url"])
        query = dict(parse_qsl(url.query))
        headers = {k: v for k, v in record["Headers"].items() if k != "user-agent"}
        body = b""
        if record["Method"] == "PUT" and query.get("restype") == "directory" and "comp" not in query:
            headers.update(smb, **{"x-ms-file-attributes": "Directory"})
        elif record["Method"] == "PUT" and not query:
            headers.update(smb, **{"x-ms-file-attributes": "None", "x-ms-type": "file"})
            headers["x-ms-content-length"] = str(file_size)
        elif query.get("comp") == "range":
            body = content[put_offset : put_offset + 4 * 1024 * 1024]
            headers.update({"x-ms-write": "update", "x-ms-range": f"bytes={put_offset}-{put_offset + len(body) - 1}"})
            put_offset += len(body)
        elif record["Method"] == "GET" and not query and get_range:
            headers["x-ms-range"] = get_range
        elif record["Method"] == "DELETE":
            # The service answers 202 again while a share is being deleted; the emulator deletes at
            # once, so the repeated deletes of the test's teardown are left out.
            if record["Url"] in deleted:
                continue
            deleted.add(record["Url"])
        response = {k: v for k, v in record["Response"].items() if k not in ("REASON_PHRASE", "STATUS_CODE", "BODY")}
        answer = record["Response"]["BODY"]
        exchanges.append(
            Exchange(
                record["Method"],
                url.path,
                url.query,
                headers,
                body,
                int(record["Response"]["STATUS_CODE"]),
                response,
                answer.encode("utf-8") if answer and not answer.startswith("__bodyStream__") else None,
            )
        )
    return exchanges


CPP = RECORDINGS / "azure-sdk-for-cpp"
EIGHT_MIB_OF_X = b"x" * 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("name", "size", "content", "get_range"),
    [
        # 8 MiB file; the test name gives the offset (o) and length (l) downloaded.
        ("withParam-DowloadShare.fromBuffer-c1s8388608o0l1.json", 8388608, EIGHT_MIB_OF_X, "bytes=0-0"),
        (
            "withParam-DowloadShare.fromBuffer-c1s8388608o8388607l2.json",
            8388608,
            EIGHT_MIB_OF_X,
            "bytes=8388607-8388608",
        ),
        (
            "withParam-DowloadShare.fromBuffer-c1s8388608o8388608l1.json",
            8388608,
            EIGHT_MIB_OF_X,
            "bytes=8388608-8388608",
        ),
        (
            "withParam-DowloadShare.fromBuffer-c1s8388608o8388609l2.json",
            8388608,
            EIGHT_MIB_OF_X,
            "bytes=8388609-8388610",
        ),
        ("FileShareDirectoryClientTest.ListFilesAndDirectoriesEncoded.json", 1024, b"", None),
        ("FileShareDirectoryClientTest.ListFilesAndDirectoriesSinglePageTest.json", 1024, b"", None),
        ("FileShareDirectoryClientTest.CreateDeleteDirectories.json", 0, b"", None),
        ("FileShareFileClientTest.CreateDeleteFiles.json", 0, b"", None),
        ("FileShareFileClientTest.DownloadEmptyFile.json", 0, b"", None),
        ("FileShareFileClientTest.DownloadNonExistingToFile.json", 0, b"", None),
        ("FileShareClientTest.CreateDeleteShares.json", 0, b"", None),
        ("FileShareFileClientTest.StorageExceptionAdditionalInfo.json", 1024, b"", None),
    ],
)
def test_replay_cpp_recording(name, size, content, get_range, replay_emulator):
    service = ShareServiceClient.from_connection_string(replay_emulator.connection_string)
    for item in service.list_shares():
        service.delete_share(item.name)
    replayer = Replayer(replay_emulator)
    try:
        for number, exchange in enumerate(
            load_cpp_recording(CPP / name, file_size=size, content=content, get_range=get_range)
        ):
            replayer.check(exchange, f"#{number}", "REDACTED")
    finally:
        replayer.close()


def test_empty_listing_matches_the_nock_recording(raw, azfiles_emulator, azfiles_share):
    """The JS nock recording (2020-02-10) holds the listing of a new share's root: no DirectoryId yet."""
    script = (RECORDINGS / "azure-sdk-for-js" / "UNRESOLVED-PATH_find_string-id-6471393765.js").read_text()
    recorded = re.search(r"""\.get\('/share\d+/'\)\s*\.query\(true\)\s*\.reply\(200, ("(?:[^"\\]|\\.)*")""", script)
    body = json.loads(recorded.group(1)).encode("utf-8")
    status, headers, answer = raw(
        "GET", f"/{azfiles_emulator.account_name}/{azfiles_share[1]}/?restype=directory&comp=list", version="2020-02-10"
    )
    assert (status, headers["content-type"]) == (200, "application/xml")
    assert answer.startswith("\ufeff".encode())
    share_name = re.search(r'ShareName="([^"]+)"', body.decode()).group(1)
    compare_xml(body.replace(share_name.encode(), azfiles_share[1].encode()), answer, Correlation(), "nock")


def test_the_recordings_are_all_there():
    # Guards the parametrized replays above against silently shrinking to nothing.
    assert len(REPLAYED) == 62, REPLAYED
