#!/usr/bin/env python
"""Cost of directory outputs: N directories of 4 small files each, written several ways.

Every measurement runs in a fresh subprocess and a fresh store (``--one KIND N`` is that
child); the figure is the fastest of ``--repeat`` runs, in milliseconds in total and in
microseconds per directory:

* ``plain``:             ``os.makedirs`` + 4 files per directory, no pylaw (the file system's own cost)
* ``localize``:          ``with LocalDirectoryTarget(...).localize("w") as tmp:`` + 4 files
* ``workflow_direct``:   ``luigi.build`` of a LocalWorkflow whose N branches each write
  ``os.makedirs(self.output().path)`` + 4 files (the unguarded pattern, guarded by pylaw)
* ``workflow_localize``: the same workflow writing through ``localize("w")``
* ``workflow_files``:    the same workflow with one file output per branch (the reference)
* ``status``:            ``workflow_output().count()`` over the N existing directories

    python benchmarks/directory_outputs.py --n 1000 --repeat 5 [--tmp /dev/shm]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import luigi

import pylaw

FILES = ("a.json", "b.json", "c.txt", "d.txt")
KINDS = ("plain", "localize", "workflow_direct", "workflow_localize", "workflow_files", "status")


def write_files(directory: str, branch: int) -> None:
    for name in FILES:
        with open(os.path.join(directory, name), "w") as f:
            f.write(f"{branch}\n")


class DirBranches(pylaw.Task, pylaw.LocalWorkflow):
    """``n`` branches, each writing one directory of 4 files (``how``: direct, localize or file)."""

    n = luigi.IntParameter()
    how = luigi.Parameter()

    def create_branch_map(self):
        return range(self.n)

    def output(self):
        if self.how == "file":
            return self.local_target(f"out_{self.branch}.txt")
        return self.local_target(f"d_{self.branch}", dir=True)

    def run(self):
        out = self.output()
        if self.how == "file":
            out.dump(f"{self.branch}\n")
        elif self.how == "direct":
            os.makedirs(out.path)
            write_files(out.path, self.branch)
        else:
            with out.localize("w") as tmp:
                write_files(tmp.path, self.branch)


def one(kind: str, n: int, store: str) -> float:
    """Seconds for one measurement of ``kind`` (run in a fresh child process)."""
    os.environ["PYLAW_STORE"] = store
    root = os.path.join(store, "plain")
    os.makedirs(root)
    started = time.perf_counter()
    if kind == "plain":
        for i in range(n):
            path = os.path.join(root, f"d_{i}")
            os.makedirs(path)
            write_files(path, i)
    elif kind == "localize":
        for i in range(n):
            with pylaw.LocalDirectoryTarget(os.path.join(root, f"d_{i}")).localize("w") as tmp:
                write_files(tmp.path, i)
    elif kind.startswith("workflow_"):
        how = kind.split("_", 1)[1].removesuffix("s")
        ok = luigi.build([DirBranches(version="b", n=n, how=how)], local_scheduler=True, log_level="ERROR")
        if not ok:
            raise SystemExit(f"{kind}: the workflow failed")
    elif kind == "status":
        luigi.build([DirBranches(version="b", n=n, how="direct")], local_scheduler=True, log_level="ERROR")
        started = time.perf_counter()
        count = DirBranches(version="b", n=n, how="direct").workflow_output().count()
        if count != n:
            raise SystemExit(f"status: {count} of {n} directories exist")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="directories per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="runs per kind; the fastest is kept")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of " + ", ".join(KINDS))
    parser.add_argument("--tmp", default=None, help="where the temporary stores go (e.g. /dev/shm: no disk noise)")
    parser.add_argument("--one", nargs=2, metavar=("KIND", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(one(args.one[0], args.n, args.one[1]))
        return 0
    results = {}
    for kind in args.kinds.split(","):
        if kind.endswith("localize") and not hasattr(pylaw.LocalDirectoryTarget, "localize"):
            continue  # measured on code before directory localize() existed
        times = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="pylaw-dirbench-", dir=args.tmp) as store:
                out = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--one", kind, store],
                                     check=True, capture_output=True, text=True).stdout
                times.append(float(out.split()[-1]))
        results[kind] = best = min(times)
        print(f"{kind:18s} {best * 1000:9.1f} ms  {best / args.n * 1e6:8.1f} us/dir", flush=True)
    print(json.dumps({"n": args.n, "repeat": args.repeat, "seconds": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
