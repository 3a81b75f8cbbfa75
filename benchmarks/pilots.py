"""Pilot jobs vs one array job per branch: N trivial branches on a real local Slurm.

    python benchmarks/pilots.py [--branches 1000] [--pilots 8] [--poll-interval 1]

Starts its own single-node Slurm with 8 slots (tests/services/slurm.py; needs root and
``tests/services/install_slurm.sh``), then runs the same workflow of trivial Luigi
branches (``tests.workflow.pilot_tasks.Uneven``, every branch writes one small JSON file)
to completion twice, each from an empty store, as a real ``python -m luigi`` submitter:

- ``array jobs`` (today's default): ``--workflow slurm``, one job per branch, all in one
  job array; every job starts a Python process and imports Luigi, pylaw and the task;
- ``pilots``: ``--workflow slurm --pilots 8``: eight pilot jobs (one array) lease the
  branches from the work queue and run them in their own process.

Reported: wall time from starting the submitter until it returned with every output
present, the number of batch submissions (distinct array ids in Slurm's job list, i.e.
``sbatch`` calls) and the number of Slurm jobs.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.services.slurm import SlurmCluster  # noqa: E402


def run_mode(name: str, cluster: SlurmCluster, branches: int, extra: list[str], poll: float, workdir: str) -> dict:
    store = os.path.join(workdir, name.replace(" ", "_"))
    config = os.path.join(workdir, "luigi.cfg")
    with open(config, "w") as f:
        f.write("[core]\nlog_level = WARNING\n")
    env = {**os.environ, "PYTHONPATH": ROOT, "PYLAW_STORE": store, "SLURM_CONF": cluster.conf,
           "LUIGI_CONFIG_PATH": config}
    before = {job[0] for job in cluster.jobs()}
    argv = [sys.executable, "-m", "luigi", "--module", "tests.workflow.pilot_tasks", "Uneven", "--version", "v1",
            "--n", str(branches), "--workflow", "slurm", "--local-scheduler", "--poll-interval", f"{poll:g}",
            "--max-polling-time", "0", *extra]
    start = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    outputs = len(glob.glob(os.path.join(store, "Uneven", "v1", "*", "out_*.json")))
    jobs = [job for job in cluster.jobs() if job[0] not in before and job[1].startswith("pylaw_Uneven_")]
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
    return {"mode": name, "seconds": elapsed, "submissions": len({job[0].partition("_")[0] for job in jobs}),
            "jobs": len(jobs), "outputs": outputs, "ok": result.returncode == 0 and outputs == branches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=1000)
    parser.add_argument("--pilots", type=int, default=8)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pylaw-bench-pilots-") as workdir:
        cluster = SlurmCluster(cpus=8).start()
        try:
            rows = [run_mode("array jobs", cluster, args.branches, [], args.poll_interval, workdir),
                    run_mode(f"{args.pilots} pilots", cluster, args.branches, ["--pilots", str(args.pilots)],
                             args.poll_interval, workdir)]
        finally:
            cluster.stop()
    print(f"{args.branches} trivial branches on a local Slurm with 8 slots")
    print(f"{'mode':<12} {'seconds':>8} {'submissions':>12} {'jobs':>6} {'outputs':>8} ok")
    for row in rows:
        print(f"{row['mode']:<12} {row['seconds']:>8.1f} {row['submissions']:>12} {row['jobs']:>6} "
              f"{row['outputs']:>8} {row['ok']}")
    print(f"speed-up: {rows[0]['seconds'] / rows[1]['seconds']:.1f}x")


if __name__ == "__main__":
    main()
