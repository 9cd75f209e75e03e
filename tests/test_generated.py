"""Generated files must match the app: the README's command reference and console sessions, and the
shell completion scripts. Regenerate with `make docs` and `make completions`."""

from __future__ import annotations

import re
import shlex

import pytest

from batchai_cli.cli.reference import SHELLS, completion_script, readme_with_reference
from tests.helpers import REPO, run_cli


def test_readme_reference_matches_help():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme_with_reference(readme) == readme, "README reference is stale: run `make docs`"


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_scripts_match_the_app(shell):
    committed = (REPO / "completions" / f"batchai.{shell}").read_text(encoding="utf-8")
    assert completion_script(shell) == committed, "completions are stale: run `make completions`"


def _console_sessions(text: str):
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        steps, current = [], None
        for line in block.splitlines():
            if line.startswith("$ "):
                current = [line[2:], []]
                steps.append(current)
            else:
                current[1].append(line)
        yield steps


def test_readme_console_sessions_are_true(home, capsys):
    """Every `$ batchai ...` line in the README's console blocks is run; its output must match."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    sessions = list(_console_sessions(readme))
    assert sessions, "the README has no console sessions"
    for steps in sessions:
        for command, expected in steps:
            argv = shlex.split(command)
            assert argv[0] == "batchai", command
            result = run_cli(capsys, *argv[1:])
            assert result.code == 0, f"{command}: {result.err}"
            assert result.out.splitlines() == expected, command


def test_lazy_group_help_matches_each_groups_docstring():
    import click

    from batchai_cli.cli import LAZY_GROUPS, cli

    ctx = click.Context(cli)
    for name, (_target, short_help) in LAZY_GROUPS.items():
        command = cli.get_command(ctx, name)
        assert command.get_short_help_str(limit=200) == short_help, name
