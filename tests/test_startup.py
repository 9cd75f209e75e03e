"""`batchai --help` and `batchai workspace list` stay light: no azure.*, jsonschema, rich, yaml, jmespath."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("azure", "jsonschema", "rich", "yaml", "jmespath", "requests", "urllib3", "starlette", "uvicorn", "jinja2")

PROBE = """
import sys
from batchai_cli.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
sys.stderr.write("HEAVY:" + ",".join(heavy) + "\\n")
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["workspace", "list"],
        ["workspace", "--help"],
        ["experiment", "list", "-g", "rg", "-w", "ws"],
        ["--version"],
        ["portal", "--help"],
    ],
)
def test_light_commands_import_no_heavy_modules(args, home):
    env = {**os.environ, "BATCHAI_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *args], capture_output=True, text=True, env=env, timeout=60
    )
    line = next(line for line in proc.stderr.splitlines() if line.startswith("HEAVY:"))
    assert line == "HEAVY:", f"{args} imported {line[6:]}"
