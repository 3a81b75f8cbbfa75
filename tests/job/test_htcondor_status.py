"""HTCondor states from the real pool's event logs and job ads (captured: see data/README.md)."""

from __future__ import annotations

import os
import shutil

import pytest

from pylaw.errors import CommandError
from pylaw.job.base import JobStatus
from pylaw.job.htcondor import EventLogReader, id_constraint, state_from_ad
from tests.services._process import require_module

classad2 = require_module("classad2")

DATA = os.path.join(os.path.dirname(__file__), "data")
HELD = "held: held by the capture on purpose (by user condoruser)"
REMOVED = "removed: removed by the capture on purpose (by user condoruser)"


def ads(name: str) -> dict[str, object]:
    with open(os.path.join(DATA, name)) as f:
        return {f"{ad['ClusterId']}.{ad['ProcId']}": ad for ad in classad2.parseAds(f.read())}


def summary(states) -> dict[str, tuple[JobStatus, int | None, str]]:
    return {job_id: (s.status, s.exit_code, s.reason) for job_id, s in states.items()}


def test_event_log_gives_every_outcome_with_exit_codes_and_reasons(tmp_path):
    shutil.copy(os.path.join(DATA, "htcondor_events.log"), tmp_path / "pylaw_a.log")
    shutil.copy(os.path.join(DATA, "htcondor_events_idle.log"), tmp_path / "pylaw_b.log")
    jobs = EventLogReader(str(tmp_path)).update()
    assert summary({job_id: tracked.state for job_id, tracked in jobs.items()}) == {
        "1.0": (JobStatus.FINISHED, 0, ""),
        "1.1": (JobStatus.FAILED, 4, "exit code 4"),     # the wrapper's "a task failed"
        "1.2": (JobStatus.FAILED, 5, "exit code 5"),     # ... "outputs missing"
        "1.3": (JobStatus.FAILED, 137, "exit code 137"),  # killed by SIGKILL: 128 + 9
        "1.4": (JobStatus.FAILED, None, HELD),            # held, then removed: the hold reason stays
        "1.5": (JobStatus.FAILED, None, REMOVED),
        "2.0": (JobStatus.FAILED, None, REMOVED),
    }


def test_event_log_is_read_incrementally_and_closed_when_its_jobs_ended(tmp_path):
    with open(os.path.join(DATA, "htcondor_events.log")) as f:
        events = f.read().split("...\n")
    path = tmp_path / "pylaw_a.log"
    path.write_text("...\n".join(events[:12]) + "...\n")  # six submits, then the first executes
    reader = EventLogReader(str(tmp_path))
    first = {job_id: t.state.status for job_id, t in reader.update().items()}
    assert set(first) == {f"1.{i}" for i in range(6)} and JobStatus.RUNNING in first.values()
    assert JobStatus.FINISHED not in first.values()
    with open(path, "a") as f:
        f.write("...\n".join(events[12:]))
    second = reader.update()
    assert second["1.0"].state.status is JobStatus.FINISHED and second["1.4"].state.reason == HELD
    assert str(path) in reader.finished and not reader.logs  # every job ended: no longer read


def test_queue_ads_held_running_idle():
    queue = ads("htcondor_queue_ads.txt")
    assert summary({job_id: state_from_ad(ad) for job_id, ad in queue.items()}) == {
        "1.4": (JobStatus.FAILED, None, HELD),
        "1.5": (JobStatus.RUNNING, None, ""),
        "2.0": (JobStatus.PENDING, None, ""),
    }


def test_history_ads_completed_signalled_removed():
    history = ads("htcondor_history_ads.txt")
    states = summary({job_id: state_from_ad(ad) for job_id, ad in history.items()})
    assert states["1.0"] == (JobStatus.FINISHED, 0, "")
    assert states["1.1"] == (JobStatus.FAILED, 4, "exit code 4")
    assert states["1.2"] == (JobStatus.FAILED, 5, "exit code 5")
    assert states["1.3"] == (JobStatus.FAILED, 137, "exit code 137")  # ExitBySignal, ExitSignal = 9
    assert states["1.5"][0] is JobStatus.FAILED and states["1.5"][2].startswith("removed: ")
    assert states["2.0"] == (JobStatus.FAILED, None, REMOVED)


def test_id_constraint_selects_exactly_the_given_jobs():
    history = ads("htcondor_history_ads.txt")
    constraint = classad2.ExprTree(id_constraint(["1.3", "2.0", "1.1"]))
    chosen = {job_id for job_id, ad in history.items() if constraint.eval(ad) is True}
    assert chosen == {"1.1", "1.3", "2.0"}
    with pytest.raises(CommandError, match="not an HTCondor job id"):
        id_constraint(["1.0) || (true"])
