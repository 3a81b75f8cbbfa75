"""Benchmark of streaming reads (``open("rb")``) against the whole-file download they replace.

    python benchmarks/remote_stream.py [--size-mb 64] [--repeat 3]

On a real xrootd (through GFAL2 and through XrdCl) and a real nginx over TLS (davs://,
through GFAL2): the time to read the first KiB of a ``--size-mb`` file, and its last KiB
after a seek, through a streamed ``open("rb")``, and through ``fs.get`` (the download that
``open("r")`` did before) followed by a local read; and a full sequential read both ways.
davs:// with the default settings (blocks read in the lean-TLS storage agent, one call per
block) and with ``PYLAW_LEAN_TLS=0`` (in this process).
Median of ``--repeat`` runs.

Needs gfal2, xrootd and nginx-extras (``bash tests/services/install_remote.sh VENV``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.gfal import GFALInterface
from pylaw.target.remote.interface import FileInterface
from pylaw.target.remote.xrootd import XRootDInterface
from tests.services.nginx_webdav import NginxWebDAVServer
from tests.services.xrootd import XRootDServer, client_environment


def median_seconds(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(label: str, base: str, interface: FileInterface, size: int, repeat: int, workdir: str) -> list[str]:
    fs = RemoteFileSystem(label, [base], interface)
    local = os.path.join(workdir, "data.bin")
    with open(local, "wb") as f:
        f.write(os.urandom(size))
    fs.put(local, "/stream/data.bin")

    def stream_head() -> bytes:
        with fs.open("/stream/data.bin", "rb") as f:
            return f.read(1024)

    def stream_tail() -> bytes:
        with fs.open("/stream/data.bin", "rb") as f:
            f.seek(-1024, 2)
            return f.read()

    def stream_all() -> int:
        with fs.open("/stream/data.bin", "rb") as f:
            return len(f.read())

    def download_head() -> bytes:
        copy = os.path.join(workdir, "copy.bin")
        fs.get("/stream/data.bin", copy)
        with open(copy, "rb") as f:
            data = f.read(1024)
        os.remove(copy)
        return data

    def download_all() -> int:
        copy = os.path.join(workdir, "copy.bin")
        fs.get("/stream/data.bin", copy)
        with open(copy, "rb") as f:
            n = len(f.read())
        os.remove(copy)
        return n

    results = {name: median_seconds(call, repeat) for name, call in (
        ("head", stream_head), ("tail", stream_tail), ("all", stream_all), ("download head", download_head),
        ("download all", download_all))}
    fs.close()
    return [f"{label:<24} first KiB {results['head'] * 1000:8.1f} ms  last KiB {results['tail'] * 1000:8.1f} ms  "
            f"whole {results['all']:6.2f} s | download + first KiB {results['download head'] * 1000:8.1f} ms  "
            f"download + whole {results['download all']:6.2f} s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    client_environment()
    xrootd, nginx = XRootDServer().start(), NginxWebDAVServer(tls=True).start()
    os.environ["X509_CERT_DIR"] = nginx.ca_dir
    rows: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="pylaw-bench-") as workdir:
            size = args.size_mb << 20
            rows += bench("root:// via gfal2", f"{xrootd.url}/bench", GFALInterface(), size, args.repeat, workdir)
            rows += bench("root:// via XrdCl", f"{xrootd.url}/bench", XRootDInterface(), size, args.repeat, workdir)
            rows += bench("davs:// (default)", f"{nginx.url}/bench", GFALInterface(), size, args.repeat, workdir)
            os.environ["PYLAW_LEAN_TLS"] = "0"  # in this process, parsing the CA bundle per request
            rows += bench("davs:// PYLAW_LEAN_TLS=0", f"{nginx.url}/bench", GFALInterface(), size, args.repeat,
                          workdir)
    finally:
        xrootd.stop()
        nginx.stop()
    print(f"streaming reads of a {args.size_mb} MiB file, median of {args.repeat} ({os.cpu_count()} cores, "
          "loopback servers)")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
