"""Shell completion through the real console script protocol (what the generated scripts call)."""

from __future__ import annotations

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
