"""Shell completion through the real console script protocol (what the generated scripts call)."""

from __future__ import annotations

import json

from tests.helpers import run_process


def _complete(home, words: str, cword: int) -> list[str]:
    result = run_process(
        env={
            "BATCHAI_HOME": str(home),
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
            "_BATCHAI_COMPLETE": "bash_complete",
        }
    )
    assert result.code == 0, result.err
    return [line.split(",", 1)[1] for line in result.out.splitlines() if line]


def test_command_and_name_completion(batchai, home):
    batchai("workspace", "create", "-g", "rg", "-n", "alpha")
    batchai("workspace", "create", "-g", "rg", "-n", "beta")
    batchai("workspace", "create", "-g", "other", "-n", "gamma")
    batchai("experiment", "create", "-g", "rg", "-w", "alpha", "-n", "exp1")
    assert _complete(home, "batchai exp", 1) == ["experiment"]
    assert _complete(home, "batchai workspace show -g rg -n ", 6) == ["alpha", "beta"]
    assert _complete(home, "batchai workspace show -n ", 4) == ["alpha", "beta", "gamma"]
    assert _complete(home, "batchai workspace list -g ", 4) == ["other", "rg"]
    assert _complete(home, "batchai experiment show -g rg -w alpha -n e", 8) == ["exp1"]


def test_completion_never_creates_state(tmp_path):
    home = tmp_path / "fresh"
    assert _complete(home, "batchai workspace show -n ", 4) == []
    assert not home.exists()


def test_job_file_options_complete_output_directories_and_file_names(batchai, home, tmp_path):
    """-d completes stdouterr and the job's output directory ids, -f the files of that directory."""
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "exp")
    batchai("cluster", "create", "-g", "rg", "-w", "ws", "-n", "c", "-s", "x", "-t", "1", "-u", "u", "-p", "Passw0rd!")
    out = tmp_path / "out"
    job = tmp_path / "job.json"
    properties = {
        "nodeCount": 1,
        "stdOutErrPathPrefix": str(out),
        "customToolkitSettings": {"commandLine": "echo hi; touch $AZ_BATCHAI_OUTPUT_MODEL/weights.bin"},
        "outputDirectories": [{"id": "MODEL", "pathPrefix": str(out)}],
    }
    job.write_text(json.dumps({"properties": properties}))
    assert batchai("job", "create", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "j", "-c", "c", "-f", str(job)).code == 0
    assert batchai("job", "wait", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "j", "--interval", "0.1").code == 0
    line = "batchai job file stream -g rg -w ws -e exp -j j"
    assert _complete(home, f"{line} -d ", 13) == ["stdouterr", "MODEL"]
    assert _complete(home, f"{line} -f ", 13) == ["execution.log", "stderr.txt", "stdout.txt"]
    assert _complete(home, f"{line} -f std", 13) == ["stderr.txt", "stdout.txt"]
    assert _complete(home, f"{line} -d MODEL -f ", 15) == ["weights.bin"]
    assert _complete(home, f"{line} -j nosuchjob -f ", 15) == []
