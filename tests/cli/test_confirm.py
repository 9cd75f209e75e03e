"""The confirmation prompt of `delete`, answered on a real terminal (a pty)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys

from tests.helpers import run_process


def _run_on_tty(args: list[str], answer: bytes, env: dict) -> tuple[int, str]:
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "batchai_cli", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, **env},
        close_fds=True,
    )
    os.close(follower)
    seen = b""
    while b"(y/n): " not in seen:
        ready, _, _ = select.select([leader], [], [], 30)
        assert ready, f"no prompt; got {seen!r}"
        seen += os.read(leader, 1024)
    os.write(leader, answer)
    code = proc.wait(timeout=30)
    try:
        while select.select([leader], [], [], 0.2)[0]:
            chunk = os.read(leader, 1024)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    os.close(leader)
    return code, seen.decode()


def test_prompt_no_keeps_and_yes_deletes(batchai, home):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    env = {"BATCHAI_HOME": str(home), "NO_COLOR": "1"}
    code, text = _run_on_tty(["workspace", "delete", "-g", "rg", "-n", "ws"], b"n\n", env)
    assert code == 1
    assert "Are you sure you want to perform this operation? (y/n): " in text
    assert "ERROR: Operation cancelled." in text
    assert run_process("workspace", "show", "-g", "rg", "-n", "ws", env=env).code == 0
    code, text = _run_on_tty(["workspace", "delete", "-g", "rg", "-n", "ws"], b"y\n", env)
    assert code == 0, text
    assert run_process("workspace", "show", "-g", "rg", "-n", "ws", env=env).code == 3
