"""Put on PYTHONPATH by tests/luigi_compat/run.py: every Python process of the run swaps in pylaw's Task."""

import tests.luigi_compat.swap  # noqa: F401
