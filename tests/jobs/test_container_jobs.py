"""containerSettings: the job runs in its image (podman here, with a tiny local image), never
silently on the host; --no-container runs the same command on the host when asked."""

from __future__ import annotations

import pytest

from tests.jobs.conftest import custom

pytestmark = pytest.mark.integration

COMMAND = (
    "echo shell=$(busybox 2>&1 | head -1 | cut -d' ' -f1); echo var=$MY_VAR secret=$MY_SECRET; "
    "echo task=$AZ_BATCHAI_TASK_INDEX; echo weights > $AZ_BATCHAI_OUTPUT_MODEL/model.bin; "
    "cat $AZ_BATCHAI_INPUT_DATA/input.txt"
)


def _job(image: str, out, data) -> dict:
    return custom(
        COMMAND,
        out,
        containerSettings={"imageSourceRegistry": {"image": image}, "shmSize": "64m"},
        environmentVariables=[{"name": "MY_VAR", "value": "plain"}],
        secrets=[{"name": "MY_SECRET", "value": "hidden"}],
        inputDirectories=[{"id": "DATA", "path": str(data)}],
        outputDirectories=[{"id": "MODEL", "pathPrefix": str(out)}],
    )


def test_job_runs_in_its_image(lab, podman, container_image, tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("dataset\n")
    created = lab.submit("boxed", _job(container_image, out, data))
    assert created.code == 0, created.err
    waited = lab.wait("boxed", timeout=120)
    segment = lab.show("boxed")["jobOutputDirectoryPathSegment"]
    folder = out / segment / "stdouterr"
    assert waited.code == 0, (folder / "stderr.txt").read_text() + (folder / "execution.log").read_text()
    assert (folder / "stdout.txt").read_text() == "shell=BusyBox\nvar=plain secret=hidden\ntask=0\ndataset\n"
    assert (out / segment / "outputs" / "model.bin").read_text() == "weights\n"


def test_no_container_runs_the_same_command_on_the_host(lab, tmp_path):
    out, data = tmp_path / "out", tmp_path / "data"
    data.mkdir()
    (data / "input.txt").write_text("dataset\n")
    created = lab.submit("host", _job("localhost/not-pulled:1", out, data), "--no-container")
    assert created.code == 0, created.err
    assert (
        "WARNING: Running on the host, not in the container image localhost/not-pulled:1, as --no-container "
        "asks." in created.err
    )
    assert lab.wait("host").code == 0
    text = (lab.stdouterr("host", out) / "stdout.txt").read_text()
    assert text.splitlines()[1:] == ["var=plain secret=hidden", "task=0", "dataset"]


def test_no_usable_runtime_is_an_error_at_create(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHAI_CONTAINER_RUNTIME", "apptainer")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    result = lab.submit("nort", _job("ubuntu:22.04", tmp_path / "out", tmp_path))
    assert result.code == 1
    assert result.err.startswith('ERROR: The job asks for the container image "ubuntu:22.04"')
    assert "--no-container" in result.err
    assert lab.batchai("job", "list", "-g", "rg", "-w", "ws", "-e", "exp").json() == []
