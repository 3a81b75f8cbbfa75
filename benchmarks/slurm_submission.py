"""Submit and complete N trivial jobs on a real local Slurm: pylaw's job arrays vs one sbatch per job.

    python benchmarks/slurm_submission.py [--jobs 1000] [--poll-interval 1]

Starts its own single-node Slurm (tests/services/slurm.py; needs root and
``tests/services/install_slurm.sh``), then, in the same run and on the same cluster:

- ``pylaw``: the Slurm job file factory renders one array script for all jobs and the
  job manager submits it with ONE ``sbatch --array`` call;
- ``one sbatch per job`` (law's way): the same factory with one job per script, and one
  ``sbatch`` call per job.

Each job runs the real pylaw job wrapper around ``true`` (a trivial branch, so that the
figures measure the batch system and submission, not Python start-up). Both modes poll
with the same bulk ``squeue`` query until every job has ended. Slurm CLI calls are
counted by the command runner that every call goes through.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pylaw.job.base import JobContext, JobRequest, JobStatus  # noqa: E402
from pylaw.job.command import CommandRunner  # noqa: E402
from pylaw.job.slurm import SlurmJobFileFactory, SlurmJobManager  # noqa: E402
from tests.services.slurm import SlurmCluster  # noqa: E402


def run_mode(name: str, jobs: int, per_file: int, poll_interval: float, workdir: str) -> dict:
    runner = CommandRunner(timeout=300)
    manager = SlurmJobManager(runner, arrays=per_file > 1)
    context = JobContext(command=["true"], job_dir=os.path.join(workdir, name.replace(" ", "_")),
                         task_name="bench", transfer_logs=False)
    requests = [JobRequest(str(i), (i,)) for i in range(jobs)]
    started = time.perf_counter()
    batches = SlurmJobFileFactory().render(requests, context, per_file=per_file)
    rendered = time.perf_counter()
    results = manager.submit(batches)
    submitted = time.perf_counter()
    errors = [r.error for r in results if not r.job_id]
    if errors:
        raise SystemExit(f"{name}: {len(errors)} submissions failed, first: {errors[0]}")
    submit_calls = runner.total_calls
    ids = [r.job_id for r in results if r.job_id]
    polls = 0
    while True:
        states = manager.query(ids)
        polls += 1
        if not any(state.status.active for state in states.values()):
            break
        time.sleep(poll_interval)
    finished = time.perf_counter()
    ok = sum(1 for state in states.values() if state.status is JobStatus.FINISHED)
    return {"mode": name, "render_s": rendered - started, "submit_s": submitted - rendered,
            "submit_calls": submit_calls, "complete_s": finished - started, "total_calls": runner.total_calls,
            "polls": polls, "ok": ok, "jobs": jobs}


def table(rows: list[dict]) -> str:
    header = (f"{'mode':<20} {'jobs':>5} {'render s':>9} {'submit s':>9} {'sbatch calls':>12} "
              f"{'complete s':>11} {'all CLI calls':>13} {'ok':>5}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['mode']:<20} {r['jobs']:>5} {r['render_s']:>9.3f} {r['submit_s']:>9.3f} "
                     f"{r['submit_calls']:>12} {r['complete_s']:>11.1f} {r['total_calls']:>13} {r['ok']:>5}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args()
    cluster = SlurmCluster().start()
    os.environ["SLURM_CONF"] = cluster.conf
    try:
        with tempfile.TemporaryDirectory(prefix="pylaw-bench-") as workdir:
            rows = [run_mode("pylaw (job arrays)", args.jobs, args.jobs, args.poll_interval, workdir),
                    run_mode("one sbatch per job", args.jobs, 1, args.poll_interval, workdir)]
    finally:
        cluster.stop()
    print(table(rows))
    a, b = rows
    print(f"\nsubmission: {b['submit_calls'] / a['submit_calls']:.0f}x fewer sbatch calls, "
          f"{b['submit_s'] / a['submit_s']:.0f}x faster; "
          f"all Slurm CLI calls until completion: {b['total_calls']} vs {a['total_calls']}")


if __name__ == "__main__":
    main()
