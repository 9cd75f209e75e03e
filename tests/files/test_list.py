"""`job file list` and `job file download` on real jobs: a local folder, Azurite Blob and the Azure
Files emulator; az's JSON and table, download URLs, directories, paging, and bad input."""

from __future__ import annotations

import urllib.request
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.files.conftest import file_args
from tests.helpers import normalize
from tests.jobs.conftest import custom

WRITE_OUTPUTS = (
    "echo hello; echo 42 > $AZ_BATCHAI_OUTPUT_MODEL/result.txt; "
    "mkdir -p $AZ_BATCHAI_OUTPUT_MODEL/epochs/1; echo w > $AZ_BATCHAI_OUTPUT_MODEL/epochs/1/w.bin"
)


def run_job(lab, name: str, properties: dict) -> None:
    created = lab.submit(name, properties)
    assert created.code == 0, created.err
    waited = lab.wait(name)
    assert waited.code == 0, waited.err


def listing(lab, job: str, *more: str) -> list[dict]:
    result = lab.batchai("job", "file", "list", *file_args(job, *more))
    assert result.code == 0, result.err
    return result.json()


def test_stdouterr_listing_is_azs_json_and_table(lab, tmp_path):
    out = tmp_path / "out"
    run_job(lab, "j", custom("echo hello", out))
    items = listing(lab, "j")
    assert [item["name"] for item in items] == ["execution.log", "stderr.txt", "stdout.txt"]
    folder = lab.stdouterr("j", out)
    stdout = items[2]
    assert stdout == {
        "contentLength": 6,
        "downloadUrl": (folder / "stdout.txt").as_uri(),
        "fileType": "file",
        "lastModified": stdout["lastModified"],
        "name": "stdout.txt",
    }
    modified = datetime.fromisoformat(stdout["lastModified"])
    assert modified.utcoffset() == timedelta(0) and modified.microsecond == 0
    assert abs(datetime.now(timezone.utc) - modified) < timedelta(minutes=5)
    table = lab.batchai("job", "file", "list", *file_args("j"), "-o", "table")
    size = items[0]["contentLength"]
    assert normalize(table.out) == (
        "Name           Type  Size  Modified\n"
        "-------------  ----  ----  -------------------------\n"
        f"execution.log  file  {size:>4}  <TIME>\n"
        "stderr.txt     file     0  <TIME>\n"
        "stdout.txt     file     6  <TIME>\n"
    )


def test_output_directory_with_directories_and_paths(lab, tmp_path):
    out = tmp_path / "out"
    run_job(
        lab,
        "j",
        custom(WRITE_OUTPUTS, out, outputDirectories=[{"id": "MODEL", "pathPrefix": str(out), "pathSuffix": "models"}]),
    )
    items = listing(lab, "j", "-d", "MODEL")
    assert [(i["name"], i["fileType"]) for i in items] == [("epochs", "directory"), ("result.txt", "file")]
    assert items[0] == {
        "contentLength": None,
        "downloadUrl": None,
        "fileType": "directory",
        "lastModified": None,
        "name": "epochs",
    }
    table = lab.batchai("job", "file", "list", *file_args("j", "-d", "MODEL"), "-o", "table")
    assert normalize(table.out) == (
        "Name        Type       Size  Modified\n"
        "----------  ---------  ----  -------------------------\n"
        "epochs      directory\n"
        "result.txt  file          3  <TIME>\n"
    )
    deeper = listing(lab, "j", "-d", "MODEL", "-p", "epochs/1")
    assert [(i["name"], i["contentLength"]) for i in deeper] == [("w.bin", 2)]
    assert deeper[0]["downloadUrl"].endswith("/outputs/models/epochs/1/w.bin")


def test_bad_input_is_refused_with_the_way_out(lab, tmp_path):
    out = tmp_path / "out"
    run_job(lab, "j", custom("echo hi", out, outputDirectories=[{"id": "MODEL", "pathPrefix": str(out)}]))
    unknown = lab.batchai("job", "file", "list", *file_args("j", "-d", "MODELS"))
    assert unknown.code == 3
    assert unknown.err == (
        'ERROR: The job "j" has no output directory with id "MODELS". Known ids: stdouterr, MODEL.\n'
    )
    climbing = lab.batchai("job", "file", "list", *file_args("j", "-p", "../../etc"))
    assert climbing.code == 2
    assert climbing.err == "ERROR: '..' is not allowed in --path: '../../etc'. Give a path inside the directory.\n"
    missing = lab.batchai("job", "file", "list", *file_args("j", "-p", "no/such"))
    assert missing.code == 3 and "No such directory: file://" in missing.err
    expiry = lab.batchai("job", "file", "list", *file_args("j", "--expiry", "1"))
    assert expiry.code == 2 and "1 is not in the range 5<=x<=600" in expiry.err
    no_job = lab.batchai("job", "file", "list", *file_args("nope"))
    assert no_job.code == 3 and 'The job "nope" was not found' in no_job.err


def test_a_job_not_started_yet_has_an_empty_listing(lab, tmp_path):
    out = tmp_path / "out"
    lab.submit("busy", custom("sleep 30", out))
    lab.submit("queued", custom("echo later", out))  # the one node is busy: this one waits
    assert listing(lab, "queued") == []


def sas_query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@pytest.mark.integration
def test_blob_listing_has_sas_urls_and_hides_directory_markers(lab, blob_job):
    from batchai_cli.storage.blob import BlobStore
    from batchai_cli.storage.credentials import parse_connection_string

    run_job(
        lab,
        "j",
        blob_job("echo hello blob", outputDirectories=[{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs"}]),
    )
    segment = lab.show("j")["jobOutputDirectoryPathSegment"]
    store = BlobStore(blob_job.container, credentials=parse_connection_string(blob_job.azurite.connection_string))
    outputs = f"{segment}/outputs"
    store.write(f"{outputs}/model.bin", b"weights")
    store.makedirs(f"{outputs}/checkpoints")  # a blobfuse marker blob, hdi_isfolder=true
    store.write(f"{outputs}/checkpoints/c1", b"1")
    store.write(f"{outputs}/logs", b"")  # a zero-byte blob named like a directory (blobfuse's old marker)
    store.write(f"{outputs}/logs/train.log", b"loss 1\n")
    before = datetime.now(timezone.utc)
    items = listing(lab, "j", "-d", "OUT", "--expiry", "15")
    assert [(i["name"], i["fileType"], i["contentLength"]) for i in items] == [
        ("checkpoints", "directory", None),
        ("logs", "directory", None),
        ("model.bin", "file", 7),
    ]
    url = items[2]["downloadUrl"]
    assert url.startswith(f"{blob_job.azurite.blob_endpoint}/{blob_job.container}/{outputs}/model.bin?")
    query = sas_query(url)
    assert query["sp"] == "rl" and query["sr"] == "b"
    expires = datetime.fromisoformat(query["se"].replace("Z", "+00:00"))
    assert timedelta(minutes=14) < expires - before < timedelta(minutes=16)
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"weights"
    stdouterr = listing(lab, "j")
    assert [i["name"] for i in stdouterr] == ["execution.log", "stderr.txt", "stdout.txt"]
    with urllib.request.urlopen(stdouterr[2]["downloadUrl"], timeout=10) as response:
        assert response.read() == b"hello blob\n"


@pytest.mark.integration
def test_azure_files_listing_has_file_sas_urls(lab, share_job):
    command = "echo hello share; mkdir -p $AZ_BATCHAI_OUTPUT_M/sub; echo x > $AZ_BATCHAI_OUTPUT_M/sub/x"
    outputs = [{"id": "M", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs"}]
    run_job(lab, "j", share_job(command, outputDirectories=outputs))
    items = listing(lab, "j")
    assert [(i["name"], i["contentLength"]) for i in items] == [
        ("execution.log", items[0]["contentLength"]),
        ("stderr.txt", 0),
        ("stdout.txt", 12),
    ]
    query = sas_query(items[2]["downloadUrl"])
    assert query["sp"] == "rl" and query["sr"] == "f"
    with urllib.request.urlopen(items[2]["downloadUrl"], timeout=10) as response:
        assert response.read() == b"hello share\n"
    assert [(i["name"], i["fileType"]) for i in listing(lab, "j", "-d", "M")] == [("sub", "directory")]


@pytest.mark.integration
@pytest.mark.slow
def test_thousands_of_files_are_listed_page_by_page(lab, blob_job, tmp_path):
    from batchai_cli.services import transfer
    from batchai_cli.storage.blob import BlobStore
    from batchai_cli.storage.credentials import parse_connection_string

    outputs = [{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs"}]
    run_job(lab, "j", blob_job("true", outputDirectories=outputs))
    segment = lab.show("j")["jobOutputDirectoryPathSegment"]
    source = tmp_path / "many"
    source.mkdir()
    names = [f"f{i:05d}.txt" for i in range(5200)]  # more than one listing page of 5000
    for name in names:
        (source / name).write_text(name)
    store = BlobStore(blob_job.container, credentials=parse_connection_string(blob_job.azurite.connection_string))
    transfer.upload_batch(store, source, destination_path=f"{segment}/outputs")
    items = listing(lab, "j", "-d", "OUT")
    assert [i["name"] for i in items] == names
    assert all(i["contentLength"] == 10 and "sp=rl" in i["downloadUrl"] for i in items)


def test_download_fetches_everything_then_only_what_changed(lab, tmp_path):
    out = tmp_path / "out"
    run_job(
        lab,
        "j",
        custom(WRITE_OUTPUTS, out, outputDirectories=[{"id": "MODEL", "pathPrefix": str(out), "pathSuffix": "models"}]),
    )
    dest = tmp_path / "dl"
    first = lab.batchai("job", "file", "download", *file_args("j", "-d", "MODEL", "--dest", str(dest)))
    assert first.code == 0, first.err
    assert first.json() == ["epochs/1/w.bin", "result.txt"]
    assert (dest / "result.txt").read_text() == "42\n"
    assert (dest / "epochs" / "1" / "w.bin").read_text() == "w\n"
    again = lab.batchai("job", "file", "download", *file_args("j", "-d", "MODEL", "--dest", str(dest)))
    assert again.json() == []
    assert "skipped 2, failed 0" in again.err
    (dest / "result.txt").write_text("edited\n")
    third = lab.batchai("job", "file", "download", *file_args("j", "-d", "MODEL", "--dest", str(dest)))
    assert third.json() == ["result.txt"]
    assert (dest / "result.txt").read_text() == "42\n"
