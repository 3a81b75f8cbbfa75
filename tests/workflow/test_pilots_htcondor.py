"""Pilot jobs (``--pilots N``) end to end on the real HTCondor pool of the test suite.

The pilots are jobs of one cluster running in the pool's chroot (Debian 13, the worker
venv of :mod:`tests.workflow.test_htcondor_e2e`), as the pool user; the queue is in the
job directory, bind-mounted at the same path. Checked from the outputs, the queue's
ledger and the schedd's own queue and history.
"""

from __future__ import annotations

import glob
import os
import sys
import time

from tests.services._process import require_module
from tests.workflow.htcondor_e2e_helpers import wait_for
from tests.workflow.pilot_checks import busy_pilot, check_exactly_once, outputs, queue_of, spread, static_spread
from tests.workflow.test_htcondor_e2e import Run, new_jobs, pool  # noqa: F401 - the module's pool fixture

htcondor2 = require_module("htcondor2")


class PilotRun(Run):
    def command(self, *args: str, task: str = "Uneven", workflow: str = "htcondor") -> list[str]:
        return [sys.executable, "-m", "luigi", "--module", "tests.workflow.pilot_tasks", task, "--version", "v1",
                "--workflow", workflow, "--local-scheduler", "--poll-interval", "1", "--retcode-task-failed", "40",
                *args]

    def pilot_job_dir(self) -> str:
        return self.job_dir("Uneven")


def test_two_hundred_branches_with_four_pilots(pool):  # noqa: F811
    run, before = PilotRun(pool), set(pool.jobs())
    result = run.run("--n", "200", "--pilots", "4", "--pilot-lease", "10s", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "htcondor pilots: 200 branches: 200 done" in result.stdout
    done = outputs(run.store)
    assert sorted(done) == list(range(200))
    jobs = new_jobs(pool, before, prefix="pylaw_Uneven_")
    assert len(jobs) == 4 and len({ad["ClusterId"] for ad in jobs.values()}) == 1, "four pilots, ONE cluster"
    assert {(ad["JobStatus"], ad["ExitCode"]) for ad in jobs.values()} == {(4, 0)}
    assert {out["condor_job"] for out in done.values()} <= set(jobs), "every branch ran inside a pilot job"
    ledger = check_exactly_once(queue_of(run.pilot_job_dir()), 200)
    assert ledger["claims"] == {b: [1] for b in range(200)}


def test_a_pilot_removed_mid_way_loses_and_duplicates_nothing(pool):  # noqa: F811
    run, before = PilotRun(pool), set(pool.jobs())
    proc = run.popen("--n", "40", "--sleep", "0.3", "--pilots", "3", "--pilot-lease", "3s", "--pilot-chunk", "2")
    try:
        def victim_pilot():
            dirs = glob.glob(os.path.join(run.store, "Uneven", "v1", "*", "_pylaw_htcondor_jobs", "submission.json"))
            return busy_pilot(queue_of(os.path.dirname(dirs[0]))) if dirs else None

        victim = wait_for(victim_pilot, timeout=90, what="a pilot with two branches done and a lease held")
        (victim_job,) = [job_id for job_id, ad in new_jobs(pool, before, prefix="pylaw_Uneven_").items()
                         if ad["ProcId"] == int(victim["id"].partition(".")[0]) and ad["JobStatus"] in (1, 2)]
        pool.schedd().act(htcondor2.JobAction.Remove, [victim_job], ("removed by the test: a lost pilot", 0))
        out, err = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, out + err
    done = outputs(run.store)
    assert sorted(done) == list(range(40)), "no branch lost"
    queue = queue_of(run.pilot_job_dir())
    ledger = check_exactly_once(queue, 40)
    assert queue.pilots()[victim["id"]]["ended"] is None, "the removed pilot never recorded an end"
    retaken = [b for b, epochs in ledger["claims"].items() if len(epochs) > 1]
    assert retaken and all(ledger["done"][b]["pilot"] != victim["id"] for b in retaken)
    assert all(done[b]["pilot"] == ledger["done"][b]["pilot"] for b in done), "each output is its winner's"
    jobs = new_jobs(pool, before, prefix="pylaw_Uneven_")
    assert jobs[victim_job]["JobStatus"] == 3, "the schedd removed the pilot"


def test_unequal_branches_end_with_the_pilots_finishing_together(pool):  # noqa: F811
    run = PilotRun(pool)
    started = time.time()
    result = run.run("--n", "44", "--sleep", "0.25", "--slow", "0,1,2,3", "--slow-sleep", "2", "--pilots", "4",
                     "--pilot-chunk", "1", "--pilot-lease", "10s", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    done = outputs(run.store)
    assert sorted(done) == list(range(44))
    pilots = queue_of(run.pilot_job_dir()).pilots()
    assert len(pilots) == 4 and all(r["completed"] for r in pilots.values())
    first_start = min(r["started"] for r in pilots.values())
    assert first_start > started
    late = spread([r["work_end"] for r in pilots.values()], first_start)
    static = static_spread({b: out["end"] - out["start"] for b, out in done.items()}, 4)
    tolerance = 0.35
    assert static > tolerance, f"static binding would end {static:.0%} apart: the check would fail for it"
    assert late < tolerance, f"the pilots ended {late:.0%} of the run apart (static binding: {static:.0%})"
