#!/usr/bin/env python
"""Cost of the remote-file cache as it fills: a miss and a hit with N entries already cached.

The storage element is gfal2's ``file://`` plugin on a temporary directory (no server: what
is measured is the cache's own local work). N files of 100 bytes are read once (misses),
then one of them ``--hits`` times (hits). A hit must not depend on N (no scan, no eviction).

    python benchmarks/cache_hits.py --entries 100 3000 --hits 200
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from pylaw.target.remote.cache import RemoteCache
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.gfal import GFALInterface


def measure(entries: int, hits: int, tmp: str) -> tuple[float, float]:
    """(milliseconds per miss while filling, milliseconds per hit) for ``entries`` cached files."""
    source = os.path.join(tmp, f"source{entries}")
    os.makedirs(source)
    for i in range(entries):
        with open(os.path.join(source, f"f{i}"), "wb") as f:
            f.write(b"x" * 100)
    cache = RemoteCache(os.path.join(tmp, f"cache{entries}"), max_size=10**9)
    fs = RemoteFileSystem("bench", [f"file://{source}"], GFALInterface(), cache=cache)
    start = time.perf_counter()
    for i in range(entries):
        with cache.fetch(fs, f"f{i}"):
            pass
    miss = (time.perf_counter() - start) / entries
    start = time.perf_counter()
    for _ in range(hits):
        with cache.fetch(fs, "f0") as local, open(str(local), "rb") as f:
            f.read()
    return miss * 1e3, (time.perf_counter() - start) / hits * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[100, 3000])
    parser.add_argument("--hits", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for entries in args.entries:
            miss, hit = measure(entries, args.hits, tmp)
            print(f"{entries:6d} entries cached: {miss:6.2f} ms per miss, {hit:6.3f} ms per hit")


if __name__ == "__main__":
    main()
