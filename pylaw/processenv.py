"""Environment variables pylaw sets in its own process, kept out of what it starts.

A library default that must reach a C library through the environment (XrdCl reads
``XRD_*`` when it initialises) is set with :func:`set_default`. Batch commands are started
with :func:`inherited_environment`, without those defaults: ``sbatch`` copies its caller's
environment into every job, and a job must get the user's settings, not whatever the
submitting process happened to set for itself.
"""

from __future__ import annotations

import os

_SET_BY_PYLAW: dict[str, str] = {}


def set_default(name: str, value: str) -> None:
    """``os.environ.setdefault``, remembering that pylaw (not the user) set it."""
    if name not in os.environ:
        os.environ[name] = value
        _SET_BY_PYLAW[name] = value


def inherited_environment() -> dict[str, str]:
    """This process's environment without the defaults pylaw set in it (user values stay)."""
    return {key: value for key, value in os.environ.items() if _SET_BY_PYLAW.get(key) != value}
