#!/usr/bin/env python
"""The share of a full local run of N trivial branches spent writing provenance records.

Wall-time differences of whole runs (``local_workflow.py``: ``run`` vs. ``run_no_records``)
drown in the noise of a shared machine at the 5 % level; this measures inside one run:
the time spent in :func:`pylaw.provenance.write_record` (and in writing the records it
held back, when the branch loop ends) against the run's total, both under the same load.
Runs ``Branches`` (benchmarks/bench_tasks.py) in a temporary store with one worker,
``--repeat`` times, and prints each run and the median share.

    python benchmarks/provenance_overhead.py --n 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def one_run(n: int, version: str) -> tuple[float, float]:
    """(total seconds, seconds inside write_record) of one full run."""
    import bench_tasks
    import luigi

    from pylaw import provenance, task

    spent = [0.0]
    depth = [0]
    write, flush = provenance.write_record, provenance._flush_batch

    def timing(function):
        def timed(*args, **kwargs):
            depth[0] += 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:  # a batch written from inside write_record is counted there
                    spent[0] += time.perf_counter() - started
        return timed

    # write_record, and the batch of held-back records written when the branch loop ends
    task.provenance.write_record = timing(write)  # type: ignore[attr-defined]
    provenance._flush_batch = timing(flush)
    try:
        started = time.perf_counter()
        assert luigi.build([bench_tasks.Branches(version=version, n=n)], local_scheduler=True, log_level="WARNING")
        return time.perf_counter() - started, spent[0]
    finally:
        task.provenance.write_record = write  # type: ignore[attr-defined]
        provenance._flush_batch = flush


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="branches (default 10000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs, each in a fresh store directory")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="pylaw-prov-bench-")
    os.environ["PYLAW_STORE"] = os.path.join(root, "store")
    shares = []
    try:
        for attempt in range(args.repeat):
            total, records = one_run(args.n, f"r{attempt}")
            share = records / (total - records)
            shares.append(share)
            print(f"run {attempt}: {total:.2f} s, records {records:.3f} s ({records / args.n * 1e6:.1f} us each), "
                  f"+{share:.1%} over the run without them")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"median: +{statistics.median(shares):.1%} for {args.n} branches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
