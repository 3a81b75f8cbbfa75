"""A workflow of trivial branches on the real HTCondor pool, in bundle mode (no shared file system).

    python benchmarks/htcondor_workflow.py [--branches 1000] [--tasks-per-job 1 10]

Starts the test pool without binds and the test XRootD (tests/services: root, the chroot of
``tests/services/install_htcondor.sh``), then, per ``--tasks-per-job`` value, runs the
submitter as ``python -m luigi`` (``--ce pool``: ``type = htcondor``, ``file_transfer =
true``, software auto, so a bundle) on ``tests.workflow.grid_tasks.GridSquare``, whose
branches each write one small JSON file to XRootD, and reports the wall time until the
command returned with all branches done. The bundle's costs: the first build and an
unchanged rebuild (``build_bundle`` in this process), and its transfer to each job, from
the schedd's history (``JobCurrentStartTransferInputDate`` .. ``FinishTransferInputDate``
and ``TransferInputSizeMB``; HTCondor ships the bundle per job: no shared node cache,
``PYLAW_BUNDLE_CACHE`` is not set, so every job also unpacks it into its scratch).
Everything the runs leave in the queue is removed, and the pool and server are stopped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.services.htcondor import HTCondorPool  # noqa: E402
from tests.services.xrootd import XRootDServer, client_environment  # noqa: E402

TRANSFER = ["ClusterId", "ProcId", "JobBatchName", "JobCurrentStartTransferInputDate",
            "JobCurrentFinishTransferInputDate", "TransferInputSizeMB", "JobCurrentStartExecutingDate",
            "CompletionDate", "ExitCode"]


def bundle_costs(bundles: str) -> dict:
    """First build and unchanged rebuild of this checkout's bundle, timed in this process."""
    import luigi.configuration

    import tests.workflow.grid_tasks  # noqa: F401 - the module whose checkout is bundled
    from pylaw.job.bundle import BundleSettings, build_bundle

    luigi.configuration.get_config().set("core", "log_level", "WARNING")
    settings = BundleSettings(cache_dir=bundles)
    started = time.perf_counter()
    first = build_bundle("tests.workflow.grid_tasks", settings)
    built = time.perf_counter()
    again = build_bundle("tests.workflow.grid_tasks", settings)
    rebuilt = time.perf_counter()
    assert first.built and not again.built and first.path == again.path
    return {"path": first.path, "files": first.files, "size_mb": first.size / 1e6, "first_s": built - started,
            "rebuild_s": rebuilt - built}


def run_workflow(pool: HTCondorPool, server: XRootDServer, bundles: str, branches: int, per_job: int) -> dict:
    base = pool.new_dir(f"bench{per_job}")
    config = os.path.join(base, "luigi.cfg")
    with open(config, "w") as f:
        f.write("[core]\nlog_level = WARNING\n[ce:pool]\ntype = htcondor\nfile_transfer = true\n"
                f"worker_python = /usr/bin/python3\n[storage:xrd]\nbase = {server.url}/bench{per_job}\n"
                f"interface = xrootd\n[bundle]\ncache_dir = {bundles}\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "PYLAW_STORE": os.path.join(base, "store"), "LUIGI_CONFIG_PATH": config}
    command = [sys.executable, "-m", "luigi", "--module", "tests.workflow.grid_tasks", "GridSquare", "--version",
               "bench", "--n", str(branches), "--tag", f"tpj{per_job}", "--tasks-per-job", str(per_job),
               "--ce", "pool", "--local-scheduler", "--poll-interval", "2", "--transfer-logs=false"]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=base,
                            preexec_fn=lambda: os.umask(0), timeout=3600)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"tasks-per-job {per_job}: exit {result.returncode}\n{result.stdout[-3000:]}"
                         f"{result.stderr[-3000:]}")
    done = len(os.listdir(server.local_path(f"bench{per_job}/grid/tpj{per_job}")))
    ads = pool.schedd().history(constraint='regexp("^pylaw_GridSquare_", JobBatchName)', projection=TRANSFER)
    return {"per_job": per_job, "branches": branches, "done": done, "wall_s": wall, "ads": list(ads)}


def transfer_stats(ads: list) -> dict:
    times = [ad["JobCurrentFinishTransferInputDate"] - ad["JobCurrentStartTransferInputDate"] for ad in ads
             if "JobCurrentFinishTransferInputDate" in ad and "JobCurrentStartTransferInputDate" in ad]
    sizes = [ad["TransferInputSizeMB"] for ad in ads if "TransferInputSizeMB" in ad]
    return {"jobs": len(ads), "with_times": len(times), "mean_s": statistics.mean(times) if times else None,
            "max_s": max(times) if times else None, "size_mb": statistics.median(sizes) if sizes else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=1000)
    parser.add_argument("--tasks-per-job", type=int, nargs="+", default=[10, 1])
    args = parser.parse_args()
    client_environment()
    server = XRootDServer().start()
    pool = HTCondorPool()
    pool.start()
    os.environ.update(pool.client_env())
    import htcondor2

    htcondor2.reload_config()
    try:
        bundles = pool.new_dir("bundles")
        costs = bundle_costs(bundles)
        print(f"bundle: {costs['files']} files, {costs['size_mb']:.2f} MB; first build {costs['first_s']:.2f} s, "
              f"unchanged rebuild {costs['rebuild_s']:.2f} s")
        seen: set[str] = set()
        for per_job in args.tasks_per_job:
            row = run_workflow(pool, server, bundles, args.branches, per_job)
            ads = [ad for ad in row["ads"] if f"{ad['ClusterId']}.{ad['ProcId']}" not in seen]
            seen |= {f"{ad['ClusterId']}.{ad['ProcId']}" for ad in row["ads"]}
            stats = transfer_stats(ads)
            mean = f"{stats['mean_s']:.2f}" if stats["mean_s"] is not None else "n/a"
            print(f"--tasks-per-job {per_job}: {row['branches']} branches ({row['done']} outputs on XRootD) in "
                  f"{row['wall_s']:.1f} s; {stats['jobs']} jobs; input transfer per job (wrapper + bundle + "
                  f"config, {stats['size_mb']} MB): mean {mean} s, max {stats['max_s']} s "
                  f"({stats['with_times']} jobs with transfer times)")
    finally:
        left = pool.schedd().query(constraint='regexp("^pylaw_", JobBatchName)', projection=["ClusterId"])
        if left:
            pool.schedd().act(htcondor2.JobAction.Remove, 'regexp("^pylaw_", JobBatchName)')
        print(f"left in the queue at the end: {len(left)} (removed)")
        pool.stop()
        server.stop()


if __name__ == "__main__":
    main()
