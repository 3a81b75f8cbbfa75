"""Fixtures of the job tests."""

from tests.doubles.glite_ce.fixture import cream_double  # noqa: F401 - the CREAM CLI double on PATH
from tests.job.bundle_repo import repo  # noqa: F401 - an analysis checkout for the bundle tests
