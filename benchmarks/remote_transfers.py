"""Benchmark of remote targets against a real xrootd and two real WebDAV servers (wsgidav, nginx).

    python benchmarks/remote_transfers.py [--files 1000] [--collection 10000] [--parallel 8]
                                          [--checksums none adler32]

Every xrootd measurement runs twice: through GFAL2 and through XRootD's own client
(``interface = xrootd``).

1. Upload of ``--files`` small files to xrootd: batch transfer (``fs.copy_many``) vs a
   serial loop of single atomic copies (``RemoteFileTarget.copy_from_local``). Goal >= 5x.
   Measured twice: on loopback (no latency: both loops are bound by the client's CPU) and
   through a delay line of ``--rtt-ms`` round-trip time (default 2 ms, a storage element in
   the same region; tests/faultproxy.py), the latency batch transfers are there to hide.
   Once per ``--checksums`` algorithm: ``none`` checks sizes only, ``adler32``/``md5``
   also verify every upload by the storage's checksum before publishing it.
2. Existence of a ``--collection``-file collection (100 directories) on xrootd and on
   WebDAV (wsgidav, pure Python; nginx, a fast server like dCache's door, also over TLS,
   in process and in pylaw's default lean-TLS agent) vs the same check on local disk.
   Goal <= 3x local. One listing per directory.
3. Cache-hit path: remote operations and time of reading a cached file, with
   ``cache_validation`` ``stat`` (goal: <= 1 stat) and ``checksum`` (a stat and a checksum
   query), through both interfaces.

Needs gfal2, xrootd, wsgidav and nginx-extras (``bash tests/services/install_remote.sh VENV``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pylaw.target.collection import TargetCollection
from pylaw.target.local import LocalDirectoryTarget
from pylaw.target.remote.cache import RemoteCache
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.gfal import GFALInterface
from pylaw.target.remote.interface import FileInterface
from pylaw.target.remote.retry import RetryPolicy
from pylaw.target.remote.target import RemoteDirectoryTarget, RemoteFileTarget
from pylaw.target.remote.tls import OPT_OUT_ENV
from pylaw.target.remote.xrootd import XRootDInterface
from tests.faultproxy import FaultProxy
from tests.remote.conftest import CountingInterface
from tests.services.nginx_webdav import NginxWebDAVServer
from tests.services.webdav import WebDAVServer
from tests.services.xrootd import XRootDServer, client_environment

Row = tuple[str, str, str, str]


def timed(call: Callable[[], object], repeat: int = 1) -> float:
    """Best wall time of ``repeat`` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def make_fs(name: str, base: str, counting: bool = False, cache: RemoteCache | None = None,
            xrdcl: bool = False, checksum: str | None = "adler32") -> RemoteFileSystem:
    """A storage element on GFAL2 (default) or on XRootD's own client (``interface = xrootd``)."""
    inner: FileInterface = XRootDInterface() if xrdcl else GFALInterface()
    interface = CountingInterface(inner) if counting else inner
    return RemoteFileSystem(name, [base], interface, RetryPolicy(attempts=3, delay=0.05), cache=cache,
                            checksum=checksum)


def bench_uploads(url: str, label: str, files: int, parallel: int, workdir: str, xrdcl: bool = False,
                  checksum: str = "none") -> list[Row]:
    """Serial loop vs ``copy_many`` into a fresh directory under ``url``."""
    label = f"{label}, checksum={checksum}"
    sources = []
    for i in range(files):
        path = os.path.join(workdir, "src", f"f{i:05d}.txt")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f"small file {i}\n" * 20)
        sources.append(path)
    name = "bench-upload-" + "".join(c for c in label if c.isalnum())
    GFALInterface().mkdir(f"{url}/{name}")
    fs = make_fs(name, f"{url}/{name}", xrdcl=xrdcl, checksum=None if checksum == "none" else checksum)

    def serial() -> None:
        for i, src in enumerate(sources):
            RemoteFileTarget(f"serial/f{i:05d}.txt", fs=fs).copy_from_local(src)

    def batch() -> None:
        results = fs.copy_many([(src, f"batch/f{i:05d}.txt") for i, src in enumerate(sources)], "put",
                               parallel=parallel, progress=False)
        assert all(r.ok for r in results)

    t_serial, t_batch = timed(serial), timed(batch)
    assert len(fs.listdir("serial")) == len(fs.listdir("batch")) == files
    return [(f"upload {files} files to xrootd{label}: serial loop", f"{t_serial:.2f} s",
             f"{1000 * t_serial / files:.2f} ms/file", ""),
            (f"upload {files} files to xrootd{label}: copy_many(parallel={parallel})", f"{t_batch:.2f} s",
             f"{1000 * t_batch / files:.2f} ms/file", f"{t_serial / t_batch:.1f}x faster (goal >= 5x)")]


def fill(directory: str, dirs: int, per_dir: int) -> None:
    """Create the collection's files directly on the server's disk (setup, not measured)."""
    for d in range(dirs):
        sub = os.path.join(directory, f"d{d:03d}")
        os.makedirs(sub, exist_ok=True)
        for i in range(per_dir):
            open(os.path.join(sub, f"out_{i:05d}.json"), "w").close()


def collection(root: object, dirs: int, per_dir: int) -> TargetCollection:
    targets = {}
    for d in range(dirs):
        directory = root.child(f"d{d:03d}", "d")  # type: ignore[attr-defined]
        for i in range(per_dir):
            targets[(d, i)] = directory.child(f"out_{i:05d}.json")
    return TargetCollection(targets)


def bench_existence(xrootd: XRootDServer, webdav: WebDAVServer, nginx: NginxWebDAVServer,
                    nginx_tls: NginxWebDAVServer, total: int, workdir: str) -> list[Row]:
    dirs, per_dir = 100, total // 100
    local_root = os.path.join(workdir, "local-coll")
    fill(local_root, dirs, per_dir)
    local = collection(LocalDirectoryTarget(local_root), dirs, per_dir)
    t_local = timed(lambda: local.count(), repeat=3)
    assert local.count() == total
    rows: list[Row] = [(f"exists: {total} files in {dirs} dirs, local disk", f"{1000 * t_local:.0f} ms", "", "")]
    servers: list[tuple[str, XRootDServer | WebDAVServer | NginxWebDAVServer]] = [
        ("xrootd via gfal2", xrootd), ("xrootd via XrdCl", xrootd), ("WebDAV (wsgidav)", webdav),
        ("WebDAV (nginx)", nginx), ("WebDAV (nginx, davs://, in process: PYLAW_LEAN_TLS=0)", nginx_tls),
        ("WebDAV (nginx, davs://, pylaw's default: lean-TLS agent)", nginx_tls)]
    os.environ["X509_CERT_DIR"] = nginx_tls.ca_dir  # the test CA, as grid sites trust the IGTF ones
    for label, server in servers:
        if "PYLAW_LEAN_TLS=0" in label:  # davix parses OpenSSL's CA bundle for every request
            os.environ[OPT_OUT_ENV] = "0"
        else:
            os.environ.pop(OPT_OUT_ENV, None)
        if not os.path.isdir(server.local_path("coll")):
            fill(server.local_path("coll"), dirs, per_dir)
        fs = make_fs(f"bench-coll-{label}", f"{server.url}/coll", counting=True, xrdcl="XrdCl" in label)
        remote = collection(RemoteDirectoryTarget("/", fs=fs), dirs, per_dir)
        t_first = timed(lambda remote=remote: remote.count())  # type: ignore[misc]  # starts agents, if any
        t_remote = timed(lambda remote=remote: remote.count(), repeat=3)  # type: ignore[misc]
        fs.interface.calls.clear()  # type: ignore[attr-defined]
        assert remote.count() == total
        calls = dict(fs.interface.calls)  # type: ignore[attr-defined]
        rows.append((f"exists: {total} files in {dirs} dirs, {label}",
                     f"{1000 * t_remote:.0f} ms (first {1000 * t_first:.0f} ms)",
                     f"remote calls: {calls}", f"{t_remote / t_local:.1f}x local (goal <= 3x)"))
    return rows


def bench_cache(xrootd: XRootDServer, workdir: str, validation: str, xrdcl: bool) -> list[Row]:
    label = f"cache_validation={validation}, via {'XrdCl' if xrdcl else 'gfal2'}"
    cache = RemoteCache(os.path.join(workdir, f"cache-{validation}-{xrdcl}"), 10**9, validation)
    fs = make_fs(f"bench-cache-{validation}-{xrdcl}", f"{xrootd.url}/cache", counting=True, cache=cache,
                 xrdcl=xrdcl)
    target = RemoteFileTarget(f"data/big-{validation}-{xrdcl}.bin", fs=fs)
    payload = os.urandom(10 * 2**20)
    with target.open("wb") as f:
        f.write(payload)

    def read() -> None:
        with target.open("rb") as f:
            assert len(f.read()) == len(payload)

    read()  # miss: fills the cache
    fs.interface.calls.clear()  # type: ignore[attr-defined]
    t_hit = timed(read, repeat=5)
    calls_per_read = {k: v / 5 for k, v in fs.interface.calls.items()}  # type: ignore[attr-defined]
    uncached = make_fs("bench-nocache", f"{xrootd.url}/cache", xrdcl=xrdcl)
    t_miss = timed(lambda: RemoteFileTarget(target.path, fs=uncached).open("rb").close(), repeat=3)
    return [(f"read 10 MiB file, cache hit, {label}", f"{1000 * t_hit:.2f} ms",
             f"remote calls per read: {calls_per_read}", "goal: <= 1 stat" if validation == "stat" else ""),
            (f"read 10 MiB file, no cache, via {'XrdCl' if xrdcl else 'gfal2'}", f"{1000 * t_miss:.1f} ms", "", "")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--collection", type=int, default=10000)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rtt-ms", type=float, default=2.0, help="round-trip time of the emulated link (0: skip)")
    parser.add_argument("--checksums", nargs="+", default=["none", "adler32"], choices=["none", "adler32", "md5"],
                        help="upload verification to measure the uploads with")
    args = parser.parse_args()
    client_environment()
    xrootd, webdav, nginx = XRootDServer().start(), WebDAVServer().start(), NginxWebDAVServer().start()
    nginx_tls = NginxWebDAVServer(tls=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="pylaw-bench-") as workdir:
            GFALInterface().mkdir(f"{xrootd.url}/cache")
            rows = []
            for xrdcl, via in ((False, "gfal2"), (True, "XrdCl")):
                for checksum in args.checksums:
                    rows += bench_uploads(xrootd.url, f" via {via} (loopback)", args.files, args.parallel, workdir,
                                          xrdcl, checksum)
                    if args.rtt_ms > 0:
                        with FaultProxy(xrootd.port, fraction=0.0, latency=args.rtt_ms / 2000) as link:
                            rows += bench_uploads(xrootd.url.replace(f":{xrootd.port}/", f":{link.port}/"),
                                                  f" via {via} ({args.rtt_ms:g} ms RTT)", args.files, args.parallel,
                                                  workdir, xrdcl, checksum)
            rows += bench_existence(xrootd, webdav, nginx, nginx_tls, args.collection, workdir)
            for xrdcl in (False, True):
                for validation in ("stat", "checksum"):
                    rows += bench_cache(xrootd, workdir, validation, xrdcl)
    finally:
        xrootd.stop()
        webdav.stop()
        nginx.stop()
        nginx_tls.stop()
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    print(f"remote targets benchmark ({os.cpu_count()} cores, loopback servers)")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
