"""Submit and complete N trivial jobs on a real local Slurm: pylaw's job arrays vs one sbatch per job.

    python benchmarks/slurm_submission.py [--jobs 1000] [--poll-interval 1] [--workflow]

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

With ``--workflow``, the same comparison is also made end to end with a real workflow
(``tests.workflow.slurm_tasks.Square``, one trivial Luigi task per branch, one branch per
job) run through ``--workflow slurm``, with ``[slurm] arrays`` true and false; here each
branch starts a Python process in its job, which dominates the time to completion.
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


class Counter:
    """Counts Slurm CLI calls and time spent submitting, across the runners a workflow creates."""

    def __init__(self) -> None:
        self.calls = 0
        self.submit_s = 0.0
        self.submit_calls = 0

    def install(self) -> None:
        counter = self
        original_run, original_submit = CommandRunner.run, SlurmJobManager.submit

        def run(self, argv, *args, **kwargs):  # type: ignore[no-untyped-def]
            counter.calls += 1
            counter.submit_calls += argv[0] == "sbatch"
            return original_run(self, argv, *args, **kwargs)

        def submit(self, batches):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return original_submit(self, batches)
            finally:
                counter.submit_s += time.perf_counter() - started

        CommandRunner.run = run  # type: ignore[method-assign]
        SlurmJobManager.submit = submit  # type: ignore[method-assign]


def run_workflow(name: str, branches: int, arrays: bool, workdir: str) -> dict:
    import luigi
    from luigi.task_register import Register

    from tests.workflow.slurm_tasks import Square

    os.environ["PYLAW_STORE"] = os.path.join(workdir, name.replace(" ", "_"))
    config = os.path.join(workdir, f"{name.replace(' ', '_')}.cfg")
    with open(config, "w") as f:
        f.write(f"[slurm]\narrays = {str(arrays).lower()}\n")
    luigi.configuration.get_config().read(config)
    Register.clear_instance_cache()
    counter = Counter()
    counter.install()
    started = time.perf_counter()
    task = Square(version="bench", n=branches, workflow="slurm", tasks_per_job=1, poll_interval=2.0)
    ok = luigi.build([task], local_scheduler=True, log_level="WARNING")
    finished = time.perf_counter()
    done = task.workflow_output().count()
    return {"mode": name, "render_s": float("nan"), "submit_s": counter.submit_s,
            "submit_calls": counter.submit_calls, "complete_s": finished - started,
            "total_calls": counter.calls, "polls": 0, "ok": done if ok else -done, "jobs": branches}


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
    parser.add_argument("--workflow", action="store_true", help="also run a real workflow both ways")
    args = parser.parse_args()
    cluster = SlurmCluster().start()
    os.environ["SLURM_CONF"] = cluster.conf
    try:
        with tempfile.TemporaryDirectory(prefix="pylaw-bench-") as workdir:
            rows = [run_mode("pylaw (job arrays)", args.jobs, args.jobs, args.poll_interval, workdir),
                    run_mode("one sbatch per job", args.jobs, 1, args.poll_interval, workdir)]
            if args.workflow:
                rows += [run_workflow("workflow, arrays", args.jobs, True, workdir),
                         run_workflow("workflow, no arrays", args.jobs, False, workdir)]
    finally:
        cluster.stop()
    print(table(rows))
    a, b = rows[:2]
    print(f"\nsubmission: {b['submit_calls'] / a['submit_calls']:.0f}x fewer sbatch calls, "
          f"{b['submit_s'] / a['submit_s']:.0f}x faster; "
          f"all Slurm CLI calls until completion: {b['total_calls']} vs {a['total_calls']}")
    if len(rows) == 4:
        c, d = rows[2:]
        print(f"workflow: {d['submit_calls']} vs {c['submit_calls']} sbatch calls, submission "
              f"{d['submit_s']:.2f} s vs {c['submit_s']:.2f} s, completion {d['complete_s']:.0f} s vs "
              f"{c['complete_s']:.0f} s")


if __name__ == "__main__":
    main()
