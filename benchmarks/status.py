#!/usr/bin/env python
"""Speed of ``pylaw status`` on large workflows: counts from listings vs. per-branch ``complete()``.

For each N (``--sizes``), in a fresh temporary store, ``pyl Branches --n N --branches
0-(N/2-1)`` makes half the outputs (``bench_tasks.Branches``: one file per branch); then,
each in its own subprocess (imports paid honestly), fastest of ``--repeat``:

* ``status``: ``pylaw status bench_tasks Branches --n N --json`` (the fast path: one
  listing per output directory, branch views instead of branch tasks);
* ``plain``:  the same counts the plain way: every branch built as a Luigi task and asked
  ``complete()`` (one ``stat`` each), what a naive monitor would do;
* ``print-status``: ``pyl Branches --n N --print-status 0``, for comparison.

Both paths must report N/2 done (checked). Prints a Markdown table.

    python benchmarks/status.py --sizes 10000,100000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
LUIGI_CFG = "[core]\nlog_level = WARNING\n[pylaw]\nmodules = bench_tasks\n"
PLAIN = """
import sys, luigi, bench_tasks
n = int(sys.argv[1])
workflow = bench_tasks.Branches(n=n, version="s")
print(sum(bool(workflow.as_branch(b).complete()) for b in range(n)))
"""


def timed(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"FAILED ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return elapsed, done.stdout


def bench(n: int, repeat: int) -> dict[str, float]:
    tmp = tempfile.mkdtemp(prefix=f"pylaw-status-bench-{n}-")
    try:
        with open(os.path.join(tmp, "luigi.cfg"), "w") as f:
            f.write(LUIGI_CFG)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([HERE, os.path.dirname(HERE)]),
               "PYLAW_STORE": os.path.join(tmp, "store"), "PYLAW_INDEX": os.path.join(tmp, "index.json"),
               "LUIGI_CONFIG_PATH": os.path.join(tmp, "luigi.cfg")}
        args = ["--n", str(n), "--version", "s"]
        timed([os.path.join(BIN, "pyl"), "Branches", *args, "--branches", f"0-{n // 2 - 1}", "--quiet"], env, tmp)
        best: dict[str, float] = {}
        for _ in range(repeat):
            seconds, out = timed([os.path.join(BIN, "pylaw"), "status", "bench_tasks", "Branches", *args, "--json"],
                                 env, tmp)
            (task,) = json.loads(out)["tasks"]
            assert task["workflow"]["branches"]["done"] == n // 2, task["workflow"]["branches"]
            best["status"] = min(best.get("status", seconds), seconds)
            seconds, out = timed([sys.executable, "-c", PLAIN, str(n)], env, tmp)
            assert int(out) == n // 2, out
            best["plain"] = min(best.get("plain", seconds), seconds)
            seconds, _ = timed([os.path.join(BIN, "pyl"), "Branches", *args, "--print-status", "0"], env, tmp)
            best["print-status"] = min(best.get("print-status", seconds), seconds)
        return best
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    print("| N | pylaw status (s) | per-branch complete() (s) | --print-status 0 (s) |")
    print("|---:|---:|---:|---:|")
    for n in (int(s) for s in options.sizes.split(",")):
        best = bench(n, options.repeat)
        print(f"| {n:,} | {best['status']:.2f} | {best['plain']:.2f} | {best['print-status']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
