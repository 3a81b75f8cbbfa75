"""What the HTCondor end-to-end tests share: the schedd's own view of jobs, waiting, reading files."""

from __future__ import annotations

import json
import time
from typing import Any

PROJECTION = ["ClusterId", "ProcId", "JobBatchName", "JobStatus", "ExitCode", "HoldReason", "RemoveReason",
              "RequestMemory", "MaxRuntime", "PylawTest"]


def schedd_jobs(schedd: Any, prefix: str = "pylaw_") -> dict[str, dict]:
    """Every job of the queue and the history whose batch name starts with ``prefix``, by id."""
    constraint = f'regexp("^{prefix}", JobBatchName)'
    found = {}
    for ad in [*schedd.history(constraint=constraint, projection=PROJECTION),
               *schedd.query(constraint=constraint, projection=PROJECTION)]:  # the queue wins: newer
        found[f"{ad['ClusterId']}.{ad['ProcId']}"] = {key: ad.get(key) for key in PROJECTION}
    return found


def wait_for(condition, timeout: float = 120, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def read_json(path: str) -> dict:
    return json.loads(read_text(path))


def read_text(path: str) -> str:
    with open(path, errors="replace") as f:
        return f.read()
