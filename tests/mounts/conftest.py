"""Fixtures for jobs with mounted volumes: the jobs fixtures (lab), and a storage account whose
connection string names Azurite (Blob) and the Azure Files emulator."""

from __future__ import annotations

import pytest

from tests.jobs.conftest import lab  # noqa: F401 - a fixture used here too


@pytest.fixture
def no_stale_mounts(home):
    """After the test: nothing of it is still mounted (the agents unmounted everything)."""
    yield
    from batchai_cli.agent import mounts

    left = mounts.mount_points(str(home))
    for point in left:  # leave the machine clean even when the test failed
        mounts._unmount_path(point, kernel=False)
    assert not left, f"still mounted after the test: {left}"
