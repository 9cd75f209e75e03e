"""Item 5: paths batchai joins under a job's folders may not climb out of them. `validate` and
`job create` apply the one rule (config.checks.escapes) and agree."""

from __future__ import annotations

import json

import pytest

from tests.jobs.conftest import custom

BAD = [
    ("pathSuffix", "../../../victim/u/outputs/m", "'..' is not allowed here: the path would leave its folder"),
    ("pathSuffix", "/etc/cron.d", "must be a relative path (it is joined under the job's folder)"),
    ("pathSuffix", "a/../../b", "'..' is not allowed here: the path would leave its folder"),
    ("pathSuffix", "..\\..\\b", "'..' is not allowed here: the path would leave its folder"),
    ("pathPrefix", "$AZ_BATCHAI_JOB_MOUNT_ROOT/x/../../y", "'..' is not allowed here: the path would leave its folder"),
]


@pytest.mark.parametrize(("field", "value", "reason"), BAD)
def test_validate_and_create_refuse_a_path_that_leaves_its_folder(lab, tmp_path, field, value, reason):
    out = tmp_path / "out"
    output = {"id": "M", "pathPrefix": str(out), field: value}
    path = lab.job_file(custom("echo hi", out, outputDirectories=[output]))
    message = f"$.properties.outputDirectories[0].{field}: {reason}: {json.dumps(value)}"
    validated = lab.batchai("validate", "job", str(path))
    assert validated.code == 1
    assert message in validated.err
    created = lab.batchai("job", "create", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "j", "-c", "c", "-f", str(path))
    assert created.code == 1
    assert message in created.err
    assert created.err.endswith("is not a valid job file (1 error).\n")
    assert lab.batchai("job", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-o", "tsv").out == ""


def test_a_relative_mount_path_may_not_leave_the_mount_root(lab, tmp_path):
    out = tmp_path / "out"
    mounts = {"localFolders": [{"path": str(tmp_path), "relativeMountPath": "../../escape"}]}
    path = lab.job_file(custom("echo hi", out, mountVolumes=mounts))
    validated = lab.batchai("validate", "job", str(path))
    assert validated.code == 1
    assert (
        "$.properties.mountVolumes.localFolders[0].relativeMountPath: '..' is not allowed here: "
        'the path would leave its folder: "../../escape"'
    ) in validated.err


def test_paths_inside_their_folders_still_pass(lab, tmp_path):
    out = tmp_path / "out"
    output = {"id": "M", "pathPrefix": str(out), "pathSuffix": "models/..v2/best"}
    path = lab.job_file(custom("echo hi", out, outputDirectories=[output]))
    validated = lab.batchai("validate", "job", str(path))
    assert validated.code == 0, validated.err


@pytest.mark.parametrize("name", ["%2e%2e/%2e%2e/x", "..%2Fx", "a/../../x"])
def test_job_file_names_may_not_climb_even_percent_encoded(lab, tmp_path, name):
    out = tmp_path / "out"
    assert lab.submit("j", custom("echo hi", out)).code == 0
    args = ("-g", "rg", "-w", "ws", "-e", "exp", "-j", "j")
    streamed = lab.batchai("job", "file", "stream", *args, "-f", name)
    assert streamed.code == 2
    assert streamed.err == f"ERROR: '..' is not allowed in --file-name: {name!r}. Give a path inside the directory.\n"
    listed = lab.batchai("job", "file", "list", *args, "-p", name)
    assert listed.code == 2
    assert "'..' is not allowed in --path" in listed.err
