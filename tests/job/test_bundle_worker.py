"""A branch run through the real job wrapper from a bundle, on a python that sees nothing of the submitter.

The worker is the host's Debian ``/usr/bin/python3`` in ``env -i PATH=/usr/bin:/bin``:
no luigi, no pylaw, no test venv, no analysis checkout. The job's working directory holds
only the wrapper and the bundle; everything the job gets is what the workflow's
:meth:`remote_job_context` put into the job environment, as a batch system without a
shared file system would deliver it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile

import luigi.configuration
import pytest

from pylaw import processenv
from pylaw.errors import BundleError, ConfigError
from pylaw.job.files import WRAPPER_NAME, job_environment, wrapper_source

WORKER_PYTHON = "/usr/bin/python3"
CLEAN = {"PATH": "/usr/bin:/bin"}


def test_the_worker_python_cannot_see_the_submitter():
    """Precondition of this module: the clean worker has no luigi (else the tests below prove nothing)."""
    result = subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", WORKER_PYTHON, "-c", "import luigi"],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "No module named 'luigi'" in result.stderr


def job(context, workdir, branches, cache=None, **extra):
    """Run one job like a batch system without a shared file system: a fresh working directory
    with the wrapper and the bundle, the job file's environment, and nothing else."""
    workdir.mkdir()
    (workdir / WRAPPER_NAME).write_text(wrapper_source())
    shutil.copy(context.bundle, workdir)
    if context.luigi_config:
        shutil.copy(context.luigi_config, workdir)  # the submitter's config, as a factory ships it
    env = {**CLEAN, **job_environment(context), "PYLAW_BRANCHES": " ".join(map(str, branches)),
           "PYLAW_JOB_KEY": "0", "PYLAW_ATTEMPT": "1", "TMPDIR": str(workdir.parent / "tmp"), **extra}
    if cache:
        env["PYLAW_BUNDLE_CACHE"] = str(cache)
    os.makedirs(env["TMPDIR"], exist_ok=True)
    script = f"exec bash {WRAPPER_NAME} {shlex.join(context.command)}"
    return subprocess.Popen(["env", "-i", *[f"{k}={v}" for k, v in env.items()], "bash", "-c", script],
                            cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process) -> tuple[int, str]:
    out, _ = process.communicate(timeout=300)
    return process.returncode, out


def test_bundle_mode_context_names_nothing_of_the_submit_host(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/submitter/only")
    processenv.set_default("XRD_PYLAWBUNDLETEST", "7")  # a client default pylaw set in its own process
    try:
        context = repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
    finally:
        os.environ.pop("XRD_PYLAWBUNDLETEST")
    env = job_environment(context)
    assert context.command[0] == "python" and context.pythonpath == []
    assert env == {"PYLAW_LOG_DIR": "logs", "PYLAW_BUNDLE": os.path.basename(context.bundle), "PYLAW_STORE": "outputs",
                   "PYLAW_LUIGI_CONFIG": "pylaw_luigi.cfg"}
    for value in [*context.command, *env.values()]:
        assert not os.path.isabs(value) and str(tmp_path) not in value and sys.prefix not in value, value
    assert os.path.dirname(context.bundle) == str(tmp_path / "bundles")  # the submit side keeps the path


def test_shared_mode_context_is_what_it_was(repo, tmp_path):
    context = repo.task(workflow="slurm").remote_job_context()
    assert context.command[0] == sys.executable and context.shared_filesystem and context.bundle == ""
    assert context.pythonpath[0] == str(repo.root)
    assert job_environment(context)["PYLAW_LOG_DIR"] == os.path.join(context.job_dir, "logs")
    assert not (tmp_path / "bundles").exists()  # no bundle built for a shared file system


def test_branches_run_from_the_bundle_on_a_clean_worker_and_the_cache_is_reused(repo, tmp_path, monkeypatch):
    monkeypatch.setenv("LUIGI_CONFIG_PATH", str(repo.root / "luigi.cfg"))  # the submitter's config: bundled
    context = repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
    cache = tmp_path / "node-cache"
    timings, marks = [], []
    for run in ("cold", "warm"):
        started = time.perf_counter()
        # no shipped config (PYLAW_LUIGI_CONFIG empty): the bundle's own config is what the job reads
        rc, out = finish(job(context, tmp_path / run, [0, 2], cache=cache, PYLAW_LUIGI_CONFIG=""))
        timings.append(time.perf_counter() - started)
        assert rc == 0, out
        assert f"bundle {os.path.basename(context.bundle)[13:29]} {'unpacked' if run == 'cold' else 'reused'}" in out
        for branch in (0, 2):
            result = json.loads((tmp_path / run / "outputs" / repo.family / "v1" / "n=3" / f"sq_{branch}.json")
                                .read_text())
            assert result["square"] == branch**2 and result["greeting"] == "from the bundled config"
            assert result["version"] == [3, 11] and os.path.realpath(result["python"]) == os.path.realpath(
                WORKER_PYTHON)
            assert result["luigi"].startswith(str(cache)) and result["pylaw"].startswith(str(cache))
        assert sorted(os.listdir(tmp_path / run / "logs")) == ["job0_attempt1_branch0.log",
                                                                "job0_attempt1_branch2.log"]
        complete = cache / os.path.basename(context.bundle)[13:29] / ".complete"
        marks.append(os.stat(complete).st_mtime_ns)
    assert marks[0] == marks[1]  # the warm job did not unpack again
    print(f"\nworker bootstrap + 2 branches: cold cache {timings[0]:.2f} s, warm cache {timings[1]:.2f} s")


def test_concurrent_jobs_on_one_node_unpack_once(repo, tmp_path):
    context = repo.task(workflow="slurm", n=4).remote_job_context(shared_filesystem=False)
    cache = tmp_path / "node-cache"
    jobs = [job(context, tmp_path / f"job{i}", [i], cache=cache) for i in range(4)]
    results = [finish(p) for p in jobs]
    assert all(rc == 0 for rc, _ in results), results
    assert all((tmp_path / f"job{i}" / "outputs" / repo.family / "v1" / "n=4" / f"sq_{i}.json").exists()
               for i in range(4))
    outputs = "".join(out for _, out in results)
    assert outputs.count(" unpacked into ") == 1 and outputs.count(" reused from ") == 3, outputs
    assert sorted(os.listdir(cache)) == sorted([os.path.basename(context.bundle)[13:29],
                                                os.path.basename(context.bundle)[13:29] + ".lock"])


def test_without_a_cache_the_bundle_is_unpacked_into_the_job_scratch_and_removed(repo, tmp_path):
    context = repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
    rc, out = finish(job(context, tmp_path / "job", [1],
                         PYLAW_BUNDLE_CACHE="/proc/not-writable"))
    assert rc == 0 and "not writable" in out and "unpacked into" in out, out
    assert os.listdir(tmp_path / "tmp") == []  # the job's scratch, bundle included, is gone


def test_a_bundle_that_does_not_match_its_name_is_a_bootstrap_failure(repo, tmp_path):
    context = repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
    wrong = os.path.join(os.path.dirname(context.bundle), "pylaw-bundle-0000000000000000.tar.gz")
    shutil.copy(context.bundle, wrong)
    context.bundle = wrong
    rc, out = finish(job(context, tmp_path / "job", [1], cache=tmp_path / "cache"))
    assert rc == 3 and "does not match its name" in out and "no branch was run" in out, out
    assert not (tmp_path / "job" / "outputs").exists()
    rc, out = finish(job(context, tmp_path / "job2", [1], PYLAW_BUNDLE="missing.tar.gz"))
    assert rc == 3 and "not found" in out, out
    rc, out = finish(job(context, tmp_path / "job3", [1], PYLAW_PYTHON="/no/python3"))
    assert rc == 3 and "set PYLAW_PYTHON" in out, out


def test_software_setting_chooses_bundle_setup_or_shared(repo, tmp_path):
    config = luigi.configuration.get_config()
    config.set("job", "software", "shared")
    try:
        with pytest.raises(ConfigError, match=r"\[job\] software = shared.*shares no file system"):
            repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
        config.set("job", "software", "setup")
        with pytest.raises(ConfigError, match="no setup_file or venv"):
            repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
        config.set("job", "setup_file", "/cvmfs/example.org/analysis/setup.sh")
        config.set("job", "worker_python", "python3.13")
        context = repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
        assert job_environment(context) == {"PYLAW_SETUP_FILE": "/cvmfs/example.org/analysis/setup.sh",
                                            "PYLAW_LOG_DIR": "logs", "PYLAW_PYTHON": "python3.13",
                                            "PYLAW_STORE": "outputs", "PYLAW_LUIGI_CONFIG": "pylaw_luigi.cfg"}
        assert context.bundle == "" and context.command[0] == "python"
        config.set("job", "software", "bundle")  # also on a shared file system: the bundle's own path
        context = repo.task(workflow="slurm").remote_job_context()
        assert job_environment(context)["PYLAW_BUNDLE"] == context.bundle and os.path.isfile(context.bundle)
        assert job_environment(context)["PYLAW_LUIGI_CONFIG"] == context.luigi_config  # a path: no transfer
    finally:
        for key in ("software", "setup_file", "worker_python"):
            config.remove_option("job", key)


def fake_compiled_distribution(site):
    """An installed distribution with an extension module for this CPython only (as numpy has one)."""
    info = site / "fakec_b1-1.0.dist-info"
    (site / "fakec_b1").mkdir(parents=True)
    info.mkdir()
    (site / "fakec_b1" / "__init__.py").write_text("KIND = 'the submitter'\n")
    (site / "fakec_b1" / "_speed.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF not really")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakec-b1\nVersion: 1.0\n")
    files = ["fakec_b1/__init__.py", "fakec_b1/_speed.cpython-311-x86_64-linux-gnu.so",
             "fakec_b1-1.0.dist-info/METADATA", "fakec_b1-1.0.dist-info/RECORD"]
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))


def wheel(wheelhouse):
    """A wheel of that distribution built "for the worker" (pure here, so the worker can install it)."""
    wheelhouse.mkdir()
    files = {"fakec_b1/__init__.py": b"KIND = 'the wheelhouse'\n",
             "fakec_b1-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: fakec-b1\nVersion: 1.0\n",
             "fakec_b1-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                             b"Tag: py3-none-any\n"}
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()}"
                     f",{len(data)}\n" for name, data in files.items()) + "fakec_b1-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheelhouse / "fakec_b1-1.0-py3-none-any.whl", "w") as zf:
        for name, data in {**files, "fakec_b1-1.0.dist-info/RECORD": record.encode()}.items():
            zf.writestr(name, data)


def test_compiled_packages_come_from_the_wheelhouse_into_a_per_bundle_venv(repo, tmp_path, monkeypatch):
    fake_compiled_distribution(tmp_path / "fakesite")
    monkeypatch.syspath_prepend(str(tmp_path / "fakesite"))
    config = luigi.configuration.get_config()
    config.set("bundle", "packages", "fakec-b1")
    try:
        with pytest.raises(BundleError, match=r"fakec-b1 1\.0 \(fakec_b1/_speed\.cpython-311.*no \[bundle\] wheel"):
            repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
        wheel(tmp_path / "wheels")
        config.set("bundle", "wheelhouse", str(tmp_path / "wheels"))
        context = repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
    finally:
        config.remove_option("bundle", "packages")
        config.remove_option("bundle", "wheelhouse")
    context.command = ["python", "-c", "import sys, fakec_b1, luigi; print(fakec_b1.KIND, sys.prefix, luigi.__file__)"]
    cache = tmp_path / "node-cache"
    started = time.perf_counter()
    rc, out = finish(job(context, tmp_path / "job", [0], cache=cache))
    cold = time.perf_counter() - started
    assert rc == 0 and "unpacked into" in out, out
    started = time.perf_counter()
    rc, out = finish(job(context, tmp_path / "job2", [0], cache=cache))
    assert rc == 0 and "reused from" in out, out
    print(f"\nwith a wheel: cold cache (venv + pip) {cold:.2f} s, warm {time.perf_counter() - started:.2f} s")
    kind, prefix, luigi_file = (tmp_path / "job" / "logs" / "job0_attempt1_branch0.log").read_text().rsplit(" ", 2)
    digest = os.path.basename(context.bundle)[13:29]
    assert kind == "the wheelhouse" and prefix == str(cache / digest / "venv")
    assert luigi_file.strip().startswith(str(cache / digest / "site"))
    assert "include-system-site-packages = true" in (cache / digest / "venv" / "pyvenv.cfg").read_text()
    assert not (cache / digest / "site" / "fakec_b1").exists()  # the submitter's build is not shipped


def test_a_computing_element_chooses_the_software_for_its_jobs(repo):
    config = luigi.configuration.get_config()
    config.add_section("ce:gridlike")
    config.set("ce:gridlike", "type", "slurm")
    config.set("ce:gridlike", "software", "bundle")
    config.set("ce:gridlike", "worker_python", "/usr/bin/python3.13")
    try:
        context = repo.task(ce="gridlike").remote_job_context()  # a shared file system, yet a bundle
        env = job_environment(context)
        assert env["PYLAW_BUNDLE"] == context.bundle and env["PYLAW_PYTHON"] == "/usr/bin/python3.13"
        config.set("ce:gridlike", "software", "sometimes")
        with pytest.raises(ConfigError, match=r"\[ce:gridlike\] software = 'sometimes'; give one of: auto"):
            repo.task(ce="gridlike").remote_job_context()
    finally:
        config.remove_section("ce:gridlike")


def job_record(workdir, repo, branch: int) -> dict:
    """The provenance record the job wrote for ``branch``, read from the log in the job's store."""
    log = workdir / "outputs" / ".pylaw-prov" / repo.family / "v1" / "n=3" / "records.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    (record,) = [r for r in records if r["parameters"]["branch"] == str(branch)]
    return record


def test_records_of_bundle_jobs_name_the_submitters_code_version_and_the_bundle(repo, tmp_path):
    from pylaw.cli.provenance import check_code_version, reproduce_command
    from pylaw.errors import NotReproducibleError

    context = repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
    rc, out = finish(job(context, tmp_path / "clean", [1], cache=tmp_path / "cache"))
    assert rc == 0, out
    record = job_record(tmp_path / "clean", repo, 1)
    digest = os.path.basename(context.bundle)[13:29]
    assert record["code"]["commit"] == repo.git("rev-parse", "HEAD").strip()
    assert record["code"]["describe"] == repo.git("describe", "--always", "--dirty").strip()
    assert record["code"]["repository"] == str(repo.root) and record["code"]["dirty"] is False
    assert record["code"]["bundle"] == {"name": os.path.basename(context.bundle), "digest": digest}
    worker = subprocess.run([WORKER_PYTHON, "-c", "import platform; print(platform.python_version())"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert record["environment"]["python"] == worker  # recorded on the worker, not copied from the submitter
    assert record["environment"]["executable"].startswith(str(tmp_path / "cache" / digest))
    check_code_version(record)  # the submitter's checkout is at the recorded commit: reproducible from here
    assert reproduce_command(record)[:4] == ["pyl", "--module", repo.module, repo.family]

    (repo.root / repo.package / "helper.py").write_text("def square(x):\n    return x * x  # edited\n")
    dirty = repo.task(workflow="slurm").remote_job_context(shared_filesystem=False)
    assert dirty.bundle != context.bundle
    rc, out = finish(job(dirty, tmp_path / "dirty", [1], cache=tmp_path / "cache"))
    assert rc == 0, out
    code = job_record(tmp_path / "dirty", repo, 1)["code"]
    assert code["describe"] == record["code"]["describe"] + "-dirty" and code["dirty"] is True
    assert code["dirty_files"] == [f"{repo.package}/helper.py"]
    assert code["bundle"]["digest"] == os.path.basename(dirty.bundle)[13:29]
    hint = "uncommitted changes.*code bundle " + os.path.basename(dirty.bundle)
    with pytest.raises(NotReproducibleError, match=hint):
        check_code_version(job_record(tmp_path / "dirty", repo, 1))
