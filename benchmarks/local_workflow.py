#!/usr/bin/env python
"""Speed and memory of pylaw's LocalWorkflow, side by side with plain Luigi.

For each N (``--sizes``), in a fresh temporary store, every measurement runs in its own
subprocess through the real command line (imports and caches are paid honestly):

* ``run``:       ``pyl Branches --n N --workers 1`` from scratch (each branch writes a file
  and its provenance record)
* ``run_no_records``: the same with ``[provenance] enabled = false`` (interleaved with
  ``run``, so both see the same machine load): the cost of provenance records
* ``noop``:      the same command again, everything complete
* ``status``:    ``pyl Branches --n N --print-status 1`` with all outputs present
* ``luigi``:     ``luigi LuigiCollect --n N --workers 1``: one task requiring N leaf tasks
  (N in ``--luigi-sizes`` only: it is quadratic; ``--skip-luigi`` leaves it out)

plus ``python -c "import pylaw"`` (best of 5). Each pylaw figure is the fastest of
``--repeat`` runs (default 3; a shared machine only ever slows a run down), each full run
in a fresh store directory. Peak memory is the child's maximum resident set size, and
its CPU time (user + system, the least of the repetitions) is read with ``os.wait4`` when
it exits: on a shared machine the CPU time of ``run`` against ``run_no_records`` shows
the cost of records where wall times drown it in noise. Prints a Markdown table and
writes the figures as JSON (``--out``).

    python benchmarks/local_workflow.py --sizes 1000,10000,100000 --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
LUIGI_CFG = "[core]\nlog_level = WARNING\n[pylaw]\nmodules = bench_tasks\n"


@dataclass
class Measurement:
    seconds: float
    max_rss_mib: float
    returncode: int
    cpu_seconds: float = 0.0  # user + system time of the child: far less disturbed by other load than wall time


def measure(cmd: list[str], env: dict[str, str], cwd: str) -> Measurement:
    """Run ``cmd``; wall time and peak RSS of that one child (``os.wait4``)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        print(f"FAILED ({proc.returncode}): {' '.join(cmd)}\n{stderr[-3000:]}", file=sys.stderr)
    # ru_maxrss is in KiB on Linux
    return Measurement(round(elapsed, 3), round(usage.ru_maxrss / 1024, 1), proc.returncode,
                       round(usage.ru_utime + usage.ru_stime, 3))


def environment(tmp: str, records: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, env.get("PYTHONPATH", "")]))
    env["PYLAW_STORE"] = os.path.join(tmp, "store")
    env["PYLAW_INDEX"] = os.path.join(tmp, "index.json")
    cfg = os.path.join(tmp, "luigi.cfg" if records else "luigi-no-records.cfg")
    with open(cfg, "w") as f:
        f.write(LUIGI_CFG + ("" if records else "[provenance]\nenabled = false\n"))
    env["LUIGI_CONFIG_PATH"] = cfg
    return env


def pyl(*args: str) -> list[str]:
    return [os.path.join(BIN, "pyl"), "Branches", "--module", "bench_tasks", *args]


def best(measurements: list[Measurement]) -> Measurement:
    """The fastest of repeated measurements (the least disturbed by other load), its memory; the
    least CPU time of them all (it need not be the fastest run's)."""
    failed = [m for m in measurements if m.returncode]
    if failed:
        return failed[0]
    fastest = min(measurements, key=lambda m: m.seconds)
    return Measurement(fastest.seconds, fastest.max_rss_mib, 0, min(m.cpu_seconds for m in measurements))


def bench_pylaw(n: int, tmp: str, repeat: int) -> dict[str, Measurement]:
    env, env_off = environment(tmp), environment(tmp, records=False)
    runs: dict[str, list[Measurement]] = {"run": [], "run_no_records": [], "noop": [], "status": []}
    for attempt in range(repeat):
        version = f"n{n}r{attempt}"  # a fresh store directory for every full run
        runs["run_no_records"].append(measure(pyl("--n", str(n), "--version", f"{version}off", "--workers", "1"),
                                              env_off, tmp))
        runs["run"].append(measure(pyl("--n", str(n), "--version", version, "--workers", "1"), env, tmp))
        runs["noop"].append(measure(pyl("--n", str(n), "--version", version, "--workers", "1"), env, tmp))
        runs["status"].append(measure(pyl("--n", str(n), "--version", version, "--print-status", "1"), env, tmp))
    return {key: best(values) for key, values in runs.items()}


def bench_status_only(n: int, tmp: str, repeat: int) -> Measurement:
    """Status of N branches whose outputs are created directly (no run needed)."""
    env = environment(tmp)
    directory = os.path.join(env["PYLAW_STORE"], "Branches", f"s{n}", f"n={n}")
    os.makedirs(directory, exist_ok=True)
    for i in range(n):
        with open(os.path.join(directory, f"out_{i}.txt"), "w") as f:
            f.write(f"{i}\n")
    cmd = pyl("--n", str(n), "--version", f"s{n}", "--print-status", "1")
    return best([measure(cmd, env, tmp) for _ in range(repeat)])


def bench_luigi(n: int, tmp: str) -> Measurement:
    """One run only: it is slow, and its store would need cleaning between runs."""
    env = environment(tmp)
    cmd = [os.path.join(BIN, "luigi"), "--module", "bench_tasks", "LuigiCollect", "--n", str(n),
           "--local-scheduler", "--workers", "1"]
    return measure(cmd, env, tmp)


def bench_import(tmp: str, repeat: int = 5) -> dict[str, float]:
    env = environment(tmp)
    code = "import time; t = time.perf_counter(); import pylaw; print(time.perf_counter() - t)"
    inside, total, bare = [], [], []
    for _ in range(repeat):
        started = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp, check=True,
                             capture_output=True, text=True).stdout
        total.append(time.perf_counter() - started)
        inside.append(float(out))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, cwd=tmp, check=True)
        bare.append(time.perf_counter() - started)
    return {"import_s": round(min(inside), 4), "process_s": round(min(total), 4),
            "bare_interpreter_s": round(min(bare), 4)}


def table(results: dict) -> str:
    lines = ["| N | full run (s) | without records (s) | run peak RSS (MiB) | no-op rerun (s) | "
             "--print-status 1 (s) | status peak RSS (MiB) | plain luigi full run (s) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    sizes = sorted({int(n) for key in ("pylaw", "status_only", "luigi") for n in results[key]})

    def cell(section: str, n: int, field: str, what: str = "") -> str:
        entry = results[section].get(str(n))
        if entry is None:
            return "–"
        entry = entry[what] if what else entry
        if entry["returncode"]:
            return "FAILED"
        return f"{entry[field]:.2f}" if field == "seconds" else f"{entry[field]:.0f}"

    for n in sizes:
        has_run = str(n) in results["pylaw"]
        status_src = ("pylaw", "status") if has_run else ("status_only", "")
        lines.append(
            f"| {n:,} | {cell('pylaw', n, 'seconds', 'run') if has_run else '–'} "
            f"| {cell('pylaw', n, 'seconds', 'run_no_records') if has_run else '–'} "
            f"| {cell('pylaw', n, 'max_rss_mib', 'run') if has_run else '–'} "
            f"| {cell('pylaw', n, 'seconds', 'noop') if has_run else '–'} "
            f"| {cell(status_src[0], n, 'seconds', status_src[1])} "
            f"| {cell(status_src[0], n, 'max_rss_mib', status_src[1])} "
            f"| {cell('luigi', n, 'seconds')} |")
    for n in sizes:
        runs = results["pylaw"].get(str(n), {})
        if runs.get("run", {}).get("cpu_seconds") and runs.get("run_no_records", {}).get("cpu_seconds"):
            on, off = runs["run"], runs["run_no_records"]
            lines.append("")
            lines.append(f"Provenance records, N = {n:,}: wall {on['seconds']:.2f} s vs {off['seconds']:.2f} s "
                         f"({on['seconds'] / off['seconds'] - 1:+.1%}), CPU {on['cpu_seconds']:.2f} s vs "
                         f"{off['cpu_seconds']:.2f} s ({on['cpu_seconds'] / off['cpu_seconds'] - 1:+.1%}).")
    imp = results["import"]
    lines.append("")
    lines.append(f"`import pylaw`: {imp['import_s'] * 1000:.0f} ms inside the interpreter (best of 5); "
                 f"`python -c \"import pylaw\"` {imp['process_s'] * 1000:.0f} ms vs. "
                 f"`python -c pass` {imp['bare_interpreter_s'] * 1000:.0f} ms.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="branch counts for run/no-op/status")
    parser.add_argument("--status-sizes", default="", help="extra branch counts measured for status only")
    parser.add_argument("--luigi-sizes", default="1000,2000", help="leaf counts for plain luigi")
    parser.add_argument("--skip-luigi", action="store_true", help="do not run plain luigi")
    parser.add_argument("--out", default="results.json", help="JSON file for the figures")
    parser.add_argument("--repeat", type=int, default=3,
                        help="repetitions of each pylaw measurement; the fastest is kept (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary stores")
    parser.add_argument("--table", metavar="JSON", help="only print the table of an earlier --out file")
    args = parser.parse_args()
    if args.table:
        with open(args.table) as f:
            print(table(json.load(f)))
        return 0

    def ints(text: str) -> list[int]:
        return [int(x) for x in text.split(",") if x.strip()]

    results: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "repeat": args.repeat,
        "pylaw": {}, "status_only": {}, "luigi": {},
    }
    root = tempfile.mkdtemp(prefix="pylaw-bench-")
    try:
        results["import"] = bench_import(root)
        for n in ints(args.sizes):
            tmp = tempfile.mkdtemp(dir=root)
            results["pylaw"][str(n)] = {k: asdict(v) for k, v in bench_pylaw(n, tmp, args.repeat).items()}
            print(f"pylaw N={n}: {results['pylaw'][str(n)]}", file=sys.stderr)
        for n in ints(args.status_sizes):
            tmp = tempfile.mkdtemp(dir=root)
            results["status_only"][str(n)] = asdict(bench_status_only(n, tmp, args.repeat))
            print(f"status N={n}: {results['status_only'][str(n)]}", file=sys.stderr)
        if not args.skip_luigi:
            for n in ints(args.luigi_sizes):
                tmp = tempfile.mkdtemp(dir=root)
                results["luigi"][str(n)] = asdict(bench_luigi(n, tmp))
                print(f"luigi N={n}: {results['luigi'][str(n)]}", file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
