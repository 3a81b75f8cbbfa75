"""Code bundles (pylaw.job.bundle): what goes in, the content hash, reproducible and atomic files."""

from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path

import pytest

from pylaw.errors import BundleError
from pylaw.job.bundle import BundleSettings, Entry, build_bundle, collect, content_digest, write_tarball
from tests.job.bundle_repo import make_repo


@pytest.fixture
def repo(tmp_path):
    made = make_repo(tmp_path)
    yield made
    sys.path.remove(str(made.root))


def names(path: str) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


def member(path: str, name: str) -> tarfile.TarInfo:
    with tarfile.open(path) as tar:
        return tar.getmember(name)


def test_bundle_holds_tracked_files_pylaw_and_portable_packages(repo, tmp_path):
    bundle = build_bundle(repo.module, BundleSettings(cache_dir=str(tmp_path / "cache")))
    listed = names(bundle.path)
    analysis = sorted(n for n in listed if n.startswith("analysis/"))
    expected = ["LINKED", "README", "luigi.cfg", "run.sh", *(f"{repo.package}/{n}.py" for n in ("__init__", "helper",
                                                                                               "tasks"))]
    assert analysis == sorted(f"analysis/{n}" for n in expected)
    assert not any(".git/" in n or n.startswith(".git") or "__pycache__" in n or n.endswith(".pyc") for n in listed)
    assert {"site/pylaw/__init__.py", "site/pylaw/job/wrapper.sh", "site/luigi/__init__.py",
            "site/tornado/speedups.abi3.so", "pythonpath.txt"} <= set(listed)
    assert any(n.startswith("site/luigi-") and n.endswith(".dist-info/METADATA") for n in listed)
    assert listed == sorted(listed)
    with tarfile.open(bundle.path) as tar:
        assert tar.extractfile("pythonpath.txt").read() == b"analysis\nsite\n"  # type: ignore[union-attr]
        link = tar.getmember("analysis/LINKED")
        assert link.isfile() and tar.extractfile(link).read() == b"readme\n"  # type: ignore[union-attr]
        for info in tar.getmembers():
            assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
            assert info.mode in (0o644, 0o755)
    assert member(bundle.path, "analysis/run.sh").mode == 0o755
    assert os.path.basename(bundle.path) == f"pylaw-bundle-{bundle.digest[:16]}.tar.gz"


def test_same_content_same_name_and_bytes_changes_follow_tracked_files(repo, tmp_path):
    settings = BundleSettings(cache_dir=str(tmp_path / "cache"))
    first = build_bundle(repo.module, settings)
    again = build_bundle(repo.module, settings)
    assert first.built and not again.built and again.path == first.path
    elsewhere = build_bundle(repo.module, BundleSettings(cache_dir=str(tmp_path / "other")))
    assert elsewhere.built and Path(elsewhere.path).read_bytes() == Path(first.path).read_bytes()

    (repo.root / "untracked.txt").write_text("changed, but not tracked\n")
    assert build_bundle(repo.module, settings).digest == first.digest

    helper = repo.root / repo.package / "helper.py"
    original = helper.read_text()
    helper.write_text(original + "# edited\n")
    dirty = build_bundle(repo.module, settings)
    assert dirty.digest != first.digest and dirty.dirty == (f"{repo.package}/helper.py",)
    with tarfile.open(dirty.path) as tar:
        assert tar.extractfile(f"analysis/{repo.package}/helper.py").read().endswith(b"# edited\n")  # type: ignore
    with pytest.raises(BundleError, match=rf"uncommitted changes.*{repo.package}/helper.py.*dirty = include"):
        build_bundle(repo.module, BundleSettings(cache_dir=str(tmp_path / "cache"), dirty="refuse"))
    helper.write_text(original)
    assert build_bundle(repo.module, settings).digest == first.digest

    (repo.root / "run.sh").chmod(0o644)  # the mode is part of the content
    assert build_bundle(repo.module, settings).digest != first.digest


def test_symlink_out_of_the_checkout_is_refused(repo, tmp_path):
    (tmp_path / "outside.txt").write_text("secret of the submit host\n")
    os.symlink(str(tmp_path / "outside.txt"), repo.root / "OUT")
    repo.git("add", "OUT")
    repo.git("commit", "-q", "-m", "link out")
    with pytest.raises(BundleError, match="points outside its checkout"):
        build_bundle(repo.module, BundleSettings(cache_dir=str(tmp_path / "cache")))


def test_module_outside_git_brings_its_top_level_package(tmp_path, monkeypatch):
    package = tmp_path / "loose" / "loosepkg_b1"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "mod.py").write_text("X = 1\n")
    (tmp_path / "loose" / "neighbour.py").write_text("")  # not part of the package
    monkeypatch.syspath_prepend(str(tmp_path / "loose"))
    __import__("loosepkg_b1.sub.mod")
    entries, dirty = collect("loosepkg_b1.sub.mod", BundleSettings(cache_dir=str(tmp_path / "cache")))
    analysis = [e.path for e in entries if e.path.startswith("analysis/")]
    assert analysis == ["analysis/loosepkg_b1/__init__.py", "analysis/loosepkg_b1/sub/__init__.py",
                        "analysis/loosepkg_b1/sub/mod.py"] and dirty == ()


def test_compiled_packages_need_the_worker_or_a_wheelhouse(repo, tmp_path):
    """numpy has extension modules for this CPython only: refused unless provided or wheels are given."""
    cache = str(tmp_path / "cache")
    with pytest.raises(BundleError, match=r"numpy .*cpython-3\d+.*\[bundle\] provided.*wheelhouse"):
        build_bundle(repo.module, BundleSettings(cache_dir=cache, packages=("numpy",)))
    provided = build_bundle(repo.module, BundleSettings(cache_dir=cache, packages=("numpy",), provided=("numpy",)))
    assert not any(n.startswith("site/numpy") for n in names(provided.path))
    with pytest.raises(BundleError, match="not installed"):
        build_bundle(repo.module, BundleSettings(cache_dir=cache, packages=("no-such-distribution-xyz",)))


def test_digest_covers_path_mode_and_content():
    base = [Entry("a", 0o644, b"x"), Entry("b", 0o644, b"y")]
    assert content_digest(base) == content_digest(list(reversed(base)))
    for changed in ([Entry("a", 0o755, b"x"), base[1]], [Entry("c", 0o644, b"x"), base[1]],
                    [Entry("a", 0o644, b"xy"), Entry("b", 0o644, b"")]):
        assert content_digest(changed) != content_digest(base)


class DiskFull(list):
    """Entries whose iteration fails half-way, like a full disk while the tarball is written."""

    def __iter__(self):
        yield from self[:2]
        raise OSError(28, "No space left on device")


def test_a_failed_write_leaves_no_bundle_behind(tmp_path):
    path = str(tmp_path / "pylaw-bundle-0123456789abcdef.tar.gz")
    entries = DiskFull(Entry(f"f{i}", 0o644, os.urandom(100_000)) for i in range(5))
    with pytest.raises(OSError, match="No space"):
        write_tarball(entries, path)
    assert os.listdir(tmp_path) == []  # neither the bundle nor a half-written temporary file
    write_tarball(entries[:], path)  # a plain list: the same entries, written completely
    with tarfile.open(path) as tar:
        assert [i.name for i in tar.getmembers()] == [f"f{i}" for i in range(5)]
        assert tar.extractfile("f4").read() == entries[4].data  # type: ignore[union-attr]
    assert Path(path).read_bytes()[:2] == b"\x1f\x8b"
