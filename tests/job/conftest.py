"""Fixtures of the job tests."""

from tests.job.bundle_repo import repo  # noqa: F401 - an analysis checkout for the bundle tests
