"""Cost of the code bundle: building it (first time, unchanged) and bootstrapping a worker from it.

    python benchmarks/bundle.py [--module examples.ttbar.tasks] [--worker-python /usr/bin/python3] [--repeat 5]

Builds the bundle of the example analysis twice into a fresh cache (the second build
finds the same content hash and returns the existing file), then runs the real job
wrapper in ``env -i PATH=/usr/bin:/bin`` with the worker python around a branch command
that only imports luigi and pylaw: once with an empty node cache (unpack, check the hash,
set up) and ``--repeat`` times with the cache filled (lock, find it complete).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pylaw.job.bundle import BundleSettings, build_bundle  # noqa: E402
from pylaw.job.files import WRAPPER_NAME, wrapper_source  # noqa: E402


def bootstrap(bundle: str, workdir: str, cache: str, python: str) -> float:
    os.makedirs(workdir)
    with open(os.path.join(workdir, WRAPPER_NAME), "w") as f:
        f.write(wrapper_source())
    os.link(bundle, os.path.join(workdir, os.path.basename(bundle)))
    env = ["PATH=/usr/bin:/bin", f"PYLAW_BUNDLE={os.path.basename(bundle)}", f"PYLAW_BUNDLE_CACHE={cache}",
           f"PYLAW_PYTHON={python}", "PYLAW_BRANCHES=0", f"TMPDIR={workdir}"]
    started = time.perf_counter()
    result = subprocess.run(["env", "-i", *env, "bash", WRAPPER_NAME, "python", "-c", "import luigi, pylaw"],
                            cwd=workdir, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"the job failed:\n{result.stdout}{result.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", default="examples.ttbar.tasks")
    parser.add_argument("--worker-python", default="/usr/bin/python3")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    importlib.import_module(args.module)
    with tempfile.TemporaryDirectory() as tmp:
        settings = BundleSettings(cache_dir=os.path.join(tmp, "bundles"))
        times = []
        for _ in range(2):
            started = time.perf_counter()
            bundle = build_bundle(args.module, settings)
            times.append(time.perf_counter() - started)
        print(f"bundle of {args.module}: {bundle.files} files, {bundle.size / 1e6:.2f} MB "
              f"({os.path.basename(bundle.path)})")
        print(f"build: first {times[0]:.2f} s, unchanged again {times[1]:.2f} s")
        cache = os.path.join(tmp, "node-cache")
        cold = bootstrap(bundle.path, os.path.join(tmp, "cold"), cache, args.worker_python)
        warm = [bootstrap(bundle.path, os.path.join(tmp, f"warm{i}"), cache, args.worker_python)
                for i in range(args.repeat)]
        print(f"worker job (bootstrap + importing luigi and pylaw): cold cache {cold:.2f} s, warm cache "
              f"{statistics.median(warm):.2f} s (median of {args.repeat})")


if __name__ == "__main__":
    main()
