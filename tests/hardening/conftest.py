"""The hardening tests (issue 13): what an attacker and an unlucky user broke, each as a test.

The job fixtures (`lab`) come from tests/jobs."""

from tests.jobs.conftest import lab  # noqa: F401 - a fixture
