"""Submit N jobs to a real HTCondor pool: pylaw's one cluster per batch vs one submit call per job.

    python benchmarks/htcondor_submit.py [--jobs 1000] [--complete 0]

Starts the test pool (tests/services/htcondor.py: root, ``tests/services/install_htcondor.sh``),
then, on the same pool and in the same run:

- ``one cluster``: the HTCondor job file factory renders ONE executable and ONE submit
  description for all jobs (one item per job) and the job manager submits it with one
  ``Schedd.submit`` call;
- ``one submit per job`` (law's way): the same factory with one job per description, and
  one ``Schedd.submit`` call per job.

Jobs are submitted on hold (``submit_options: hold = true``), so no job runs and the pool is
not loaded with 2N jobs; they are removed right after (one ``Schedd.act`` per 500 jobs).
Schedd calls are counted by the manager, through which every bindings call goes. With
``--complete M``, M trivial jobs (the wrapper around ``true``) are also run to completion
as one cluster and followed through the event log until all ended.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pylaw.job.base import JobContext, JobRequest, JobStatus  # noqa: E402
from pylaw.job.htcondor import HTCondorJobFileFactory, HTCondorJobManager, HTCondorSettings  # noqa: E402
from tests.services.htcondor import HTCondorPool  # noqa: E402


def submit_mode(pool: HTCondorPool, name: str, jobs: int, per_file: int) -> dict:
    settings = HTCondorSettings(submit_options=(("hold", "true"),), max_cluster_size=max(per_file, 1))
    job_dir = pool.new_dir(name.replace(" ", "_"))
    context = JobContext(command=["true"], job_dir=job_dir, task_name="bench", transfer_logs=False)
    manager = HTCondorJobManager(job_dir, settings)
    manager.schedd()  # locate once, outside the timing (both modes need it once)
    requests = [JobRequest(str(i), (i,)) for i in range(jobs)]
    started = time.perf_counter()
    batches = HTCondorJobFileFactory(settings).render(requests, context, per_file=per_file)
    rendered = time.perf_counter()
    results = manager.submit(batches)
    submitted = time.perf_counter()
    errors = [r.error for r in results if not r.job_id]
    if errors:
        raise SystemExit(f"{name}: {len(errors)} submissions failed, first: {errors[0]}")
    submit_calls = manager.calls.get("submit", 0)
    ids = [r.job_id for r in results if r.job_id]
    manager.cancel(ids)
    removed = time.perf_counter()
    left = pool.schedd().query(constraint='regexp("^pylaw_bench_", JobBatchName) && JobStatus != 3',
                               projection=["ClusterId"])
    return {"mode": name, "jobs": jobs, "clusters": len({i.split(".")[0] for i in ids}),
            "render_s": rendered - started, "submit_s": submitted - rendered, "submit_calls": submit_calls,
            "remove_s": removed - submitted, "remove_calls": manager.calls.get("act", 0), "left": len(left)}


def complete(pool: HTCondorPool, jobs: int, poll_interval: float = 1.0) -> dict:
    settings = HTCondorSettings(max_cluster_size=jobs)
    job_dir = pool.new_dir("complete")
    context = JobContext(command=["true"], job_dir=job_dir, task_name="complete", transfer_logs=False)
    manager = HTCondorJobManager(job_dir, settings)
    started = time.perf_counter()
    batches = HTCondorJobFileFactory(settings).render([JobRequest(str(i), (i,)) for i in range(jobs)], context,
                                                      per_file=jobs)
    ids = [r.job_id for r in manager.submit(batches) if r.job_id]
    polls = 0
    while True:
        states = manager.query(ids)
        polls += 1
        if not any(state.status.active for state in states.values()):
            break
        time.sleep(poll_interval)
    ok = sum(1 for state in states.values() if state.status is JobStatus.FINISHED)
    return {"jobs": jobs, "complete_s": time.perf_counter() - started, "polls": polls, "ok": ok,
            "calls": dict(manager.calls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--complete", type=int, default=0, help="also run this many trivial jobs to completion")
    args = parser.parse_args()
    pool = HTCondorPool()
    pool.start()
    os.environ.update(pool.client_env())
    import htcondor2

    htcondor2.reload_config()
    try:
        rows = [submit_mode(pool, "one cluster", args.jobs, args.jobs),
                submit_mode(pool, "one submit per job", args.jobs, 1)]
        header = (f"{'mode':<20} {'jobs':>5} {'clusters':>8} {'render s':>9} {'submit s':>9} {'submit calls':>12} "
                  f"{'remove s':>9} {'remove calls':>12} {'left':>5}")
        print(header)
        print("-" * len(header))
        for r in rows:
            print(f"{r['mode']:<20} {r['jobs']:>5} {r['clusters']:>8} {r['render_s']:>9.3f} {r['submit_s']:>9.3f} "
                  f"{r['submit_calls']:>12} {r['remove_s']:>9.3f} {r['remove_calls']:>12} {r['left']:>5}")
        if args.complete:
            result = complete(pool, args.complete)
            print(f"\n{result['jobs']} trivial jobs as one cluster: all ended after {result['complete_s']:.1f} s "
                  f"({result['ok']} finished, {result['polls']} polls, bindings calls {result['calls']})")
    finally:
        pool.stop()


if __name__ == "__main__":
    main()
