"""The short form of `make soak`'s faults (tests/hardening/faults.py), inside `make test`: each kind
a few times, with 0 stuck jobs, 0 bytes lost and 0 errors. The long run does them at scale."""

from __future__ import annotations

import pytest

from tests.hardening import faults

pytestmark = pytest.mark.integration


def assert_survived(result: faults.FaultResult, *, tries: int, wrote: bool = True) -> None:
    told = "\n".join([result.figure(), *result.failures])
    assert result.tries >= tries, told
    assert result.stuck == [], told
    assert result.errors == [], told
    assert result.bytes_lost == 0, told
    assert result.bytes_written > 0 or not wrote, told


def test_sigkill_of_job_create(tmp_path):
    result = faults.kill_create(tmp_path, 4)
    assert_survived(result, tries=4, wrote=False)  # a create killed early leaves no job to write
    assert sum(result.outcomes.values()) == 4


@pytest.mark.parametrize("kill", [faults.kill_runner, faults.kill_agent])
def test_sigkill_of_a_running_job_s_runner_or_agent(kill, tmp_path):
    result = kill(tmp_path, 3)
    assert_survived(result, tries=3)
    # Every try killed the job while it ran: it failed, with the reason.
    assert sum(result.outcomes.values()) == 3 and all(what.startswith("failed") for what in result.outcomes)


def test_azurite_stopped_during_jobs_writing_to_blob(tmp_path):
    result = faults.azurite_outage_jobs(tmp_path, outage=5)
    assert_survived(result, tries=2)


def test_azurite_stopped_during_upload_batch(tmp_path):
    result = faults.azurite_outage_upload(tmp_path, outage=12, files=100)
    assert_survived(result, tries=1)
    assert dict(result.outcomes) == {"succeeded": 1}  # waited out: the next test's outage, with patience


def test_azurite_stopped_longer_than_upload_batch_waits(tmp_path):
    result = faults.azurite_outage_upload(tmp_path, outage=12, files=100, patience=0)  # its 3 retries take ~5 s
    assert_survived(result, tries=2)
    assert [what.split(",")[0] for what in result.outcomes] == ["failed", "run again: succeeded"], result.outcomes


def test_a_full_home_and_a_full_log_folder(tmp_path):
    assert_survived(faults.disk_full_home(tmp_path / "home", 3), tries=3)
    assert_survived(faults.disk_full_logs(tmp_path / "logs", 2), tries=2)


def test_a_slurmd_killed_mid_job(slurm, tmp_path):
    result = faults.slurmd_killed(tmp_path, slurm, 1)
    assert_survived(result, tries=1)
