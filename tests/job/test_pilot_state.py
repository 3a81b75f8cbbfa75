"""The submission state of pilot submissions: one optional key, readable by older code, absent otherwise."""

from __future__ import annotations

import json

from pylaw.job.state import RecordStatus, SubmissionState
from pylaw.target.local import LocalFileTarget


def test_pilot_key_round_trips_and_ordinary_files_do_not_have_it(tmp_path):
    ordinary = SubmissionState(LocalFileTarget(str(tmp_path / "a.json")), "slurm")
    ordinary.new_record([1, 2])
    ordinary.save()
    assert "pilots" not in json.loads((tmp_path / "a.json").read_text()), "ordinary files are unchanged"

    target = LocalFileTarget(str(tmp_path / "b.json"))
    state = SubmissionState(target, "slurm", pilots={"queue": "/q/queue-1", "count": 4})
    state.new_record([]).status = RecordStatus.RUNNING
    state.save()
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["format"] == 1 and data["pilots"] == {"queue": "/q/queue-1", "count": 4}
    again = SubmissionState.load(target, "slurm")
    assert again.pilots == state.pilots and again.jobs["0"].branches == []


def test_a_closed_pilot_submission_starts_fresh_and_keeps_its_queue_in_the_past(tmp_path):
    target = LocalFileTarget(str(tmp_path / "s.json"))
    state = SubmissionState(target, "slurm", pilots={"queue": "/q/queue-1", "count": 2})
    state.new_record([]).status = RecordStatus.DONE
    state.closed = True
    state.save()
    fresh = SubmissionState.load(target, "slurm")
    assert fresh.pilots == {} and not fresh.jobs, "a new run gets a new queue"
    assert fresh.past[-1]["pilots"]["queue"] == "/q/queue-1"
