"""main(): the one place that turns exceptions into messages and exit codes."""

from __future__ import annotations

import pytest

from batchai_cli.services import workspaces


@pytest.fixture
def broken(monkeypatch):
    def boom(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(workspaces, "list_workspaces", boom)


def test_an_unexpected_error_is_one_line_without_debug(batchai, broken):
    result = batchai("workspace", "list")
    assert (result.code, result.out) == (1, "")
    assert result.err == (
        "ERROR: Unexpected error: RuntimeError: disk on fire Run the command again with --debug "
        "for the traceback, and report it.\n"
    )


def test_debug_shows_the_traceback(batchai, broken):
    result = batchai("workspace", "list", "--debug")
    assert result.code == 1
    assert result.err.startswith("Traceback (most recent call last):")
    assert result.err.endswith("ERROR: RuntimeError: disk on fire\n")


def test_only_show_errors_hides_warnings(batchai, tmp_path):
    batchai("workspace", "create", "-g", "rg", "-n", "ws", "-o", "none")
    batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "e", "-o", "none")
    batchai(
        "cluster", "create", "-g", "rg", "-w", "ws", "-n", "c", "-s", "S", "-t", "1", "-p", "Passw0rd!", "-o", "none"
    )
    job = tmp_path / "job.json"
    job.write_text(
        '{"properties": {"nodeCount": 1, "customToolkitSettings": {"commandLine": "true"}, '
        f'"stdOutErrPathPrefix": "{tmp_path}", "nodeCont": 2}}}}'
    )
    noisy = batchai(
        "job", "create", "-g", "rg", "-w", "ws", "-e", "e", "-n", "j1", "-c", "c", "-f", str(job), "-o", "none"
    )
    assert noisy.code == 0
    assert noisy.err.startswith(f"WARNING: {job}:1:")
    assert "nodeCont" in noisy.err
    quiet = batchai(
        "job",
        "create",
        "-g",
        "rg",
        "-w",
        "ws",
        "-e",
        "e",
        "-n",
        "j2",
        "-c",
        "c",
        "-f",
        str(job),
        "-o",
        "none",
        "--only-show-errors",
    )
    assert (quiet.code, quiet.err) == (0, "")
    batchai("job", "wait", "-g", "rg", "-w", "ws", "-e", "e", "-n", "j1")
    batchai("job", "wait", "-g", "rg", "-w", "ws", "-e", "e", "-n", "j2")


def test_a_broken_pipe_is_not_an_error(home, tmp_path):
    import subprocess
    import sys

    env = {"BATCHAI_HOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, "-m", "batchai_cli", "workspace", "create", "-g", "rg", "-n", "w", "-o", "none"],
        env=env,
        check=True,
    )
    # `true` exits without reading, so batchai writes into a closed pipe (as with `| head`).
    proc = subprocess.run(
        f"{sys.executable} -m batchai_cli workspace list | true; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0
    assert proc.stderr == ""


def test_debug_does_not_leak_into_the_next_command(batchai):
    assert batchai("workspace", "list", "--debug").code == 0
    after = batchai("workspace", "list")
    assert (after.code, after.err) == (0, "")
