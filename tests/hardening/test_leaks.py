"""Keys never appear: a job on Azurite Blob with the storage key in the job file, in
AZURE_BATCHAI_STORAGE_KEY and in AZURE_STORAGE_CONNECTION_STRING, a secret, and a cluster admin
password. The test greps every command's output (with --debug too), every file the job wrote to
storage (stdout, stderr, execution.log, outputs), the job's whole environment (the job prints it),
a download of it all, and every file under $BATCHAI_HOME but state.db and the job bundle's request
(job.json), which hold them by design: the nodes need the storage key and the job's secrets
(owner-only: test_secrets_at_rest.py). The cluster's admin password is in neither bundle file."""

from __future__ import annotations

import os
from pathlib import Path

from batchai_cli.storage.blob import BlobStore
from batchai_cli.storage.credentials import parse_connection_string
from tests.files.conftest import blob_job, file_args  # noqa: F401 - blob_job is a fixture

SECRET = "s3cret-VALUE-4f1c"
PASSWORD = "Passw0rd!"  # the lab cluster's admin password
STATE_FILES = ("state.db", "state.db-wal", "state.db-shm")


def test_no_key_secret_or_password_appears_anywhere(lab, blob_job, tmp_path, monkeypatch):  # noqa: F811
    key = blob_job.azurite.account_key
    monkeypatch.setenv("AZURE_BATCHAI_STORAGE_KEY", key)
    job = blob_job(
        "env; echo model > $AZ_BATCHAI_OUTPUT_M/model.txt; echo to-stderr >&2",
        secrets=[{"name": "MY_SECRET", "value": SECRET}],
        outputDirectories=[{"id": "M", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs"}],
    )
    texts: dict[str, str] = {}

    def run(*args: str) -> None:
        result = lab.batchai(*args)
        texts[" ".join(args)] = result.out + result.err

    run("job", "create", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "leak", "-c", "c", "-f", str(lab.job_file(job)))
    assert lab.wait("leak").code == 0
    for fmt in ("json", "table", "tsv", "yaml"):
        run("job", "show", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "leak", "-o", fmt)
        run("cluster", "show", "-g", "rg", "-w", "ws", "-n", "c", "-o", fmt)
        run("job", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-o", fmt)
    run("job", "show", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "leak", "--debug")
    run("job", "file", "list", *file_args("leak"), "--debug")
    run("job", "file", "list", *file_args("leak", "-d", "M"))
    run("job", "file", "stream", *file_args("leak", "-f", "stdout.txt"), "--debug")
    run("job", "file", "download", *file_args("leak"), "--dest", str(tmp_path / "dl"), "--debug")
    run("job", "node", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "leak")

    store = BlobStore(blob_job.container, credentials=parse_connection_string(blob_job.azurite.connection_string))
    stored = {entry.path: store.read(entry.path).decode(errors="replace") for entry in store.walk("")}
    stdout = next(text for path, text in stored.items() if path.endswith("stdouterr/stdout.txt"))
    assert "PATH=" in stdout and "MY_SECRET=" + SECRET in stdout  # the job's own secret: its to see
    stdout = stdout.replace("MY_SECRET=" + SECRET, "")
    assert any(path.endswith("stdouterr/execution.log") for path in stored)
    texts.update({f"storage:{path}": text for path, text in stored.items() if not path.endswith("stdout.txt")})
    texts["storage:stdout.txt (the job's environment)"] = stdout
    for folder in (lab.home, tmp_path / "dl"):
        for root, _dirs, names in os.walk(folder):
            for name in names:
                path = Path(root, name)
                if path.parent == lab.home and name in STATE_FILES:
                    continue
                if name == "job.json" and path.parent.parent.name == "jobs":  # the bundle's request
                    request = path.read_text()
                    assert PASSWORD not in request
                    texts[str(path)] = request.replace(key, "").replace(SECRET, "")
                    continue
                if path.is_file() and not path.is_symlink():
                    texts[str(path)] = path.read_bytes().decode(errors="replace")
    assert len(texts) > 30, sorted(texts)
    # What the job printed itself (its own secret, from `env`) is its to print: only that line is taken out.
    texts = {where: text.replace("MY_SECRET=" + SECRET, "") for where, text in texts.items()}
    leaks = [(where, what) for where, text in texts.items() for what in (key, SECRET, PASSWORD) if what in text]
    assert leaks == []
