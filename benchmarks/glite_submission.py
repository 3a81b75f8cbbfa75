"""CREAM submission and status costs against the CLI TEST DOUBLE (tests/doubles/glite_ce).

    python benchmarks/glite_submission.py [--jobs 40] [--threads 1 4]

No CREAM CE can run here, so the figures are the client side only: one CLI process per
call (the double is a Python script, as slow to start as a small real client) and its
local bookkeeping, never a CE's network round trips or load. They show what pylaw's
choices buy: parallel ``glite-ce-job-submit`` calls (CREAM has no bulk submission), and
one status call for many ids (on the command line, or through an id file with ``-i``).
Jobs run ``true``; everything the runs leave behind is purged and the state removed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pylaw.job.base import JobContext, JobRequest  # noqa: E402
from pylaw.job.glite import GliteJobFileFactory, GliteJobManager, GliteSettings  # noqa: E402
from tests.doubles.glite_ce.fixture import ENDPOINT, CreamDouble, make_proxy  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="pylaw-glite-bench-")
    proxy = os.path.join(work, "x509up")
    double = CreamDouble(os.path.join(work, "state"), proxy, make_proxy(proxy))
    os.makedirs(double.state)
    os.environ.update(double.env)
    try:
        for threads in args.threads:
            job_dir = os.path.join(work, f"jobs-{threads}")
            settings = GliteSettings(endpoint=ENDPOINT, submit_threads=threads, retrieve_output=False)
            manager = GliteJobManager(job_dir, settings)
            context = JobContext(command=["true"], job_dir=job_dir, task_name="Bench", shared_filesystem=False)
            requests = [JobRequest(str(i), (i,)) for i in range(args.jobs)]
            batches = GliteJobFileFactory(settings).render(requests, context, per_file=1)
            start = time.perf_counter()
            results = manager.submit(batches)
            elapsed = time.perf_counter() - start
            ids = [r.job_id for r in results if r.job_id]
            print(f"submit {args.jobs} jobs, {threads} thread(s): {elapsed:.2f} s "
                  f"({elapsed / args.jobs * 1000:.0f} ms per job; delegations: {len(manager.delegations)})")
            for label, on_argv in (("ids on the command line", 10**6), ("ids in an id file (-i)", 0)):
                manager.ids_on_argv = on_argv
                start = time.perf_counter()
                manager.query(ids)
                print(f"  status of {len(ids)} jobs, {label}: {time.perf_counter() - start:.2f} s, one call")
            double.wait_for(lambda: all(j["status"] in ("DONE-OK", "DONE-FAILED") for j in double.jobs()),
                            timeout=300, what="the jobs to end")
            manager.cleanup([])
    finally:
        double.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
