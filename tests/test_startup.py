"""`batchai --help` and `batchai workspace list` stay light: no azure.*, jsonschema, rich, yaml, jmespath."""

from __future__ import annotations

import json
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


# What `job create` of a valid file on a local cluster may not import: jsonschema is for explaining
# a file's problems (config/quickcheck.py answers the valid case), the rest is for other commands.
JOB_CREATE_HEAVY = ("azure", "jsonschema", "referencing", "rich", "yaml", "jmespath", "requests", "starlette")


def test_job_create_of_a_valid_file_imports_no_jsonschema(batchai, home, tmp_path):
    assert batchai("workspace", "create", "-g", "rg", "-n", "ws", "-o", "none").code == 0
    assert batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "exp", "-o", "none").code == 0
    cluster = ("cluster", "create", "-g", "rg", "-w", "ws", "-n", "c", "-s", "Standard_NC6", "-t", "1")
    assert batchai(*cluster, "-u", "me", "-p", "Passw0rd!", "-o", "none").code == 0
    job_file = tmp_path / "job.json"
    properties = {
        "nodeCount": 1,
        "stdOutErrPathPrefix": str(tmp_path),
        "customToolkitSettings": {"commandLine": "true"},
    }
    job_file.write_text(json.dumps({"properties": properties}))
    job = ("-g", "rg", "-w", "ws", "-e", "exp", "-n", "j")
    args = ["job", "create", *job, "-c", "c", "-f", str(job_file), "-o", "none"]
    env = {**os.environ, "BATCHAI_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE % (JOB_CREATE_HEAVY,), *args], capture_output=True, text=True, env=env, timeout=60
    )
    assert batchai("job", "wait", *job).code == 0, proc.stderr  # created, and ran
    line = next(line for line in proc.stderr.splitlines() if line.startswith("HEAVY:"))
    assert line == "HEAVY:", f"job create imported {line[6:]}"
