#!/usr/bin/env python
"""Cost of branch claims in luigid against the machine-local branch lock.

For each N (``--sizes``), in a fresh temporary store:

* ``local``:  ``luigi.build([Branches(n=N)], local_scheduler=True)``: branches locked with
  the machine-local lock bytes (:mod:`pylaw.workflow.branchlock`)
* ``luigid``: the same build against a real luigid on a free loopback port, started here:
  branches claimed there (:mod:`pylaw.workflow.schedulerclaims`)

* ``luigi``: for N in ``--luigi-sizes`` only, the same work as N plain Luigi tasks
  (``LuigiCollect``) against that luigid: what branches would cost as Luigi tasks

and the primitives alone, per branch: one lock cycle of ``BranchLocks`` (try_lock, made,
mark_made, unlock) and one claim cycle of ``BranchClaims`` (register, a share of the
batched ``get_work``, release). Each figure is the fastest of ``--repeat`` runs (a shared
machine only ever slows a run down). Prints a Markdown table.

    python benchmarks/branch_claims.py --sizes 1000,5000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_luigid(directory: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "luigid")
    log = open(os.path.join(directory, "luigid.log"), "w")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen([exe, "--address", "127.0.0.1", "--port", str(port), "--logdir", directory,
                                "--state-path", os.path.join(directory, "state.pickle")], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, port
        except OSError:
            time.sleep(0.05)
    process.terminate()
    raise RuntimeError(f"luigid did not listen on {port}")


def fresh_store(root: str, name: str) -> None:
    os.environ["PYLAW_STORE"] = os.path.join(root, name)  # read on every use (pylaw.config.store_root)


def build(n: int, version: str, **scheduler: object) -> float:
    import bench_tasks
    import luigi

    started = time.perf_counter()
    assert luigi.build([bench_tasks.Branches(version=version, n=n)], log_level="WARNING", **scheduler)
    return time.perf_counter() - started


def luigi_tasks(n: int, scheduler_port: int) -> float:
    import bench_tasks
    import luigi

    started = time.perf_counter()
    assert luigi.build([bench_tasks.LuigiCollect(n=n)], log_level="WARNING", scheduler_host="127.0.0.1",
                       scheduler_port=scheduler_port)
    return time.perf_counter() - started


def lock_cycle(n: int, version: str) -> float:
    import bench_tasks

    from pylaw.workflow.branchlock import BranchLocks

    locks = BranchLocks(bench_tasks.Branches(version=version, n=n))
    started = time.perf_counter()
    for branch in range(n):
        assert locks.try_lock(branch) is None
        locks.made(branch)
        locks.mark_made(branch)
        locks.unlock(branch)
    locks.close()
    return time.perf_counter() - started


def claim_cycle(n: int, version: str, url: str) -> float:
    import bench_tasks

    from pylaw.workflow.schedulerclaims import BranchClaims

    workflow = bench_tasks.Branches(version=version, n=n)
    branches = [workflow.as_branch(b) for b in range(n)]
    claims = BranchClaims(url, workflow, branches, chunk=max(2, -(-n // 16)))
    started = time.perf_counter()
    claims.start()  # registers every branch
    got = 0
    while ids := claims.claim():
        for task_id in ids:
            claims.release(task_id, True)
        got += len(ids)
    elapsed = time.perf_counter() - started
    claims.close()
    assert got == n, f"claimed {got} of {n}"
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--luigi-sizes", default="1000", help="sizes also run as plain Luigi tasks (quadratic)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="pylaw-claims-bench-")
    process, port = start_luigid(root)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        for n in map(int, args.sizes.split(",")):
            best: dict[str, float] = {}
            runs = {
                "local": lambda n, v: build(n, v, local_scheduler=True),
                "luigid": lambda n, v: build(n, v, scheduler_host="127.0.0.1", scheduler_port=port),
                "lock cycle": lock_cycle,
                "claim cycle": lambda n, v: claim_cycle(n, v, url),
            }
            for attempt in range(args.repeat):
                for name, run in runs.items():
                    label = f"{name.replace(' ', '-')}-{n}-{attempt}"
                    fresh_store(root, label)
                    seconds = run(n, label)
                    best[name] = min(best.get(name, seconds), seconds)
            if str(n) in args.luigi_sizes.split(","):
                fresh_store(root, f"luigi-{n}")
                best["luigi"] = luigi_tasks(n, port)  # once: its outputs stay (a rerun would find them)
            rows.append((n, best))
    finally:
        process.terminate()  # luigid pickles its state first: slow with thousands of tasks
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)
    print("| N | build, local lock (s) | build, luigid claims (s) | extra per branch (ms) "
          "| lock cycle per branch (µs) | claim cycle per branch (ms) | N Luigi tasks via luigid (s) |")
    print("|---|---|---|---|---|---|---|")
    for n, best in rows:
        extra = (best["luigid"] - best["local"]) / n * 1e3
        luigi_figure = f"{best['luigi']:.2f}" if "luigi" in best else "-"
        print(f"| {n} | {best['local']:.2f} | {best['luigid']:.2f} | {extra:.2f} "
              f"| {best['lock cycle'] / n * 1e6:.1f} | {best['claim cycle'] / n * 1e3:.2f} | {luigi_figure} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
