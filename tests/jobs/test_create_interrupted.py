"""`job create` is all or nothing (hardening item 1): a create killed after it wrote the job but
before its cluster's engine had it leaves a job that the next look fails with the reason, and the
cluster's queue goes on; a create interrupted with Ctrl-C leaves no job at all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from batchai_cli import ids
from batchai_cli.procs import process_start
from batchai_cli.state import open_state
from tests.jobs.conftest import custom

pytestmark = pytest.mark.integration


def _as_if_interrupted(rid) -> None:
    """Make the job what a `job create` SIGKILLed between writing the job and starting its
    runner leaves behind: queued, its handle naming a submitter process that is gone."""
    gone = subprocess.Popen(["true"])
    start = process_start(gone.pid)
    gone.wait()
    db = open_state()
    try:
        run = db.get_run(rid.key)
        assert run["phase"] == "queued"
        handle = {"submitter": {"pid": gone.pid, "start": start}, "host": run["runner"]["host"]}
        db.update_job(rid, runner=handle)
    finally:
        db.close()


def test_a_job_whose_create_was_killed_is_failed_and_the_queue_goes_on(lab, tmp_path):
    out = tmp_path / "out"
    gate = tmp_path / "gate"
    # A job that holds the only node, so the next one stays queued while we make it look interrupted.
    assert lab.submit("holder", custom(f"while [ ! -e {gate} ]; do sleep 0.05; done", out)).code == 0
    assert lab.submit("orphan", custom("echo never", out)).code == 0
    # Its runner is alive and recorded; replace that record with a dead `job create`'s and stop the runner.
    db = open_state()
    rid = ids.parse(lab.show("orphan")["id"], expect="job")
    runner = db.get_run(rid.key)["runner"]
    db.close()
    os.kill(runner["pid"], signal.SIGKILL)
    _as_if_interrupted(rid)
    shown = lab.show("orphan")
    assert shown["executionState"] == "failed"
    [error] = shown["executionInfo"]["errors"]
    assert error["code"] == "JobStartFailed"
    assert "was interrupted before the job was handed to its cluster" in error["message"]
    gate.touch()
    assert lab.wait("holder").code == 0
    # The queue is not blocked: the next job runs on the node.
    assert lab.submit("next", custom("echo ran", out)).code == 0
    assert lab.wait("next").code == 0
    assert (lab.stdouterr("next", out) / "stdout.txt").read_text() == "ran\n"
    # And terminate of the failed job returns at once, leaving it as it is.
    done = lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "orphan", "-y")
    assert done.code == 0
    assert lab.show("orphan")["executionState"] == "failed"


def test_ctrl_c_during_create_leaves_no_job(lab, tmp_path):
    """SIGINT while `job create` hands the job to the engine: the job is not left behind."""
    out = tmp_path / "out"
    path = lab.job_file(custom("echo hi", out), "interrupt.json")
    code = (
        "import os, signal, sys\n"
        "from batchai_cli.engines import local\n"
        "real = local.LocalEngine.submit\n"
        "def interrupted(self, job):\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return real(self, job)\n"
        "local.LocalEngine.submit = interrupted\n"
        "from batchai_cli.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    argv = ["job", "create", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "interrupt", "-c", "c", "-f", str(path)]
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "Operation cancelled" in done.stderr
    time.sleep(0.5)
    listing = lab.batchai("job", "list", "-g", "rg", "-w", "ws", "-e", "exp", "--query", "[].name", "-o", "tsv")
    assert listing.out.split() == []
