"""HTCondor job files: what reaches the script (everything, quoted) and the submit description (nothing of the user's).

The script is run by a real bash and the description parsed by the real ``htcondor2.Submit``.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from pylaw.errors import ConfigError, JobFileError
from pylaw.job.base import JobContext, JobRequest
from pylaw.job.files import WRAPPER_NAME
from pylaw.job.htcondor import HTCondorJobFileFactory, HTCondorJobManager, HTCondorSettings, parse_submit_options
from tests.services._process import require_module

htcondor2 = require_module("htcondor2")

NASTY = "a b 'c' \"d\" $(touch PWNED) $$(Arch) `touch PWNED2` ; \\ $HOME\nnext line * ? ,"
REQUESTS = [JobRequest("1", (0, 1, 2)), JobRequest("2", (3,), attempt=2), JobRequest("3", (4, 5))]


def context(tmp_path, **kwargs) -> JobContext:
    defaults = {"command": ["python", "-m", "pylaw.job.branch", f"--text={NASTY}", "--workflow=local"],
                "job_dir": str(tmp_path / "jobs"), "task_name": "Square", "env": {"MY_VALUE": NASTY},
                "venv": "/opt/venv"}
    return JobContext(**{**defaults, **kwargs})


def render(tmp_path, settings: HTCondorSettings | None = None, per_file: int = 10, **kwargs):
    factory = HTCondorJobFileFactory(settings or HTCondorSettings())
    ctx = context(tmp_path, **kwargs)
    batches = factory.render(REQUESTS, ctx, per_file=per_file)
    return batches, ctx


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_one_description_per_batch_with_one_item_per_request(tmp_path):
    batches, _ = render(tmp_path)
    (batch,) = batches
    assert batch.path.endswith(f"{batch.name}.sub") and batch.requests == tuple(REQUESTS)
    submit = htcondor2.Submit(read(batch.path))  # the file as a user would resubmit it
    assert [item["pylaw_item"] for item in submit.itemdata()] == ["0", "1", "2"]
    assert submit["batch_name"] == batch.name and submit["should_transfer_files"] == "NO"
    assert submit["executable"] == os.path.join(str(tmp_path / "jobs"), f"{batch.name}.sh")  # absolute
    assert submit["initialdir"] == str(tmp_path / "jobs") and submit["log"] == f"{batch.name}.log"


def test_batches_split_at_max_cluster_size(tmp_path):
    batches, _ = render(tmp_path, per_file=2)
    assert [len(b.requests) for b in batches] == [2, 1]
    assert len({b.name for b in batches}) == 2


def test_user_values_reach_the_script_verbatim_and_never_the_description(tmp_path):
    (batch,) = render(tmp_path)[0]
    description = read(batch.path)
    for fragment in ("touch", "PWNED", "HOME", "next line", "MY_VALUE"):
        assert fragment not in description
    script = os.path.join(os.path.dirname(batch.path), f"{batch.name}.sh")
    # run the real script with a stand-in wrapper that prints what it was given
    with open(os.path.join(os.path.dirname(batch.path), WRAPPER_NAME), "w") as f:
        f.write('printf "%s\\0" "$PYLAW_JOB_KEY" "$PYLAW_ATTEMPT" "$PYLAW_BRANCHES" "$MY_VALUE" "$PYLAW_VENV" "$@"\n')
    out = subprocess.run(["bash", script, "1"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.split("\0")[:-1] == ["2", "2", "3", NASTY, "/opt/venv", "python", "-m", "pylaw.job.branch",
                                    f"--text={NASTY}", "--workflow=local"]
    assert not list(tmp_path.glob("**/PWNED*"))
    missing = subprocess.run(["bash", script, "7"], capture_output=True, text=True)
    assert missing.returncode == 3 and "no job for item 7" in missing.stdout


def test_file_transfer_mode_ships_wrapper_and_bundle_and_brings_logs_back(tmp_path):
    bundle = tmp_path / "bundle-0123abcd.tar.gz"
    bundle.write_text("x")
    (batch,) = render(tmp_path, HTCondorSettings(file_transfer=True), bundle=str(bundle))[0]
    submit = htcondor2.Submit(read(batch.path))
    jobs = str(tmp_path / "jobs")
    assert submit["should_transfer_files"] == "YES" and submit["when_to_transfer_output"] == "ON_EXIT_OR_EVICT"
    assert submit["transfer_input_files"] == f"{jobs}/{WRAPPER_NAME}, {bundle}"
    assert submit["transfer_output_files"] == "logs"
    script = read(os.path.join(jobs, f"{batch.name}.sh"))
    assert "export PYLAW_LOG_DIR=logs" in script and "export PYLAW_BUNDLE=bundle-0123abcd.tar.gz" in script
    assert f"\nbash {WRAPPER_NAME} " in script and "mkdir -p logs" in script
    assert jobs + "/logs" not in script  # no submit-host path of the job dir in what runs on the worker


def test_resources_attributes_and_walltime(tmp_path):
    settings = HTCondorSettings(requirements='OpSys == "LINUX" && Memory > 100', request_cpus="2",
                                request_memory="2G", request_disk="1G", accounting_group="group_cms.user",
                                submit_options=parse_submit_options('+JobFlavour = "espresso"\npriority = 5'))
    (batch,) = render(tmp_path, settings, walltime=90.5)[0]
    submit = htcondor2.Submit(read(batch.path))
    assert submit["requirements"] == 'OpSys == "LINUX" && Memory > 100'
    assert (submit["request_cpus"], submit["request_memory"], submit["request_disk"]) == ("2", "2G", "1G")
    assert submit["accounting_group"] == "group_cms.user" and submit["priority"] == "5"
    assert submit["MY.JobFlavour"] == '"espresso"' and submit["MY.MaxRuntime"] == "91"
    assert "EnteredCurrentStatus > 91" in submit["periodic_remove"]


def test_container_universe(tmp_path):
    settings = HTCondorSettings(universe="container", container_image="/cvmfs/unpacked.cern.ch/alma9:latest")
    (batch,) = render(tmp_path, settings)[0]
    submit = htcondor2.Submit(read(batch.path))
    assert submit["universe"] == "container" and submit["container_image"].startswith("/cvmfs/")


@pytest.mark.parametrize(("settings", "words"), [
    (HTCondorSettings(requirements='OpSys == "LINUX"\nqueue 100'), "line break"),
    (HTCondorSettings(requirements="Memory > $(mem)"), "macros"),
    (HTCondorSettings(requirements="Memory >"), "not a valid ClassAd expression"),
    (HTCondorSettings(request_memory="2G\nqueue"), "number"),
    (HTCondorSettings(accounting_group="a b"), "accounting_group"),
    (HTCondorSettings(universe="grid"), "universe"),
    (HTCondorSettings(universe="container"), "container_image"),
])
def test_unsafe_settings_are_refused(tmp_path, settings, words):
    with pytest.raises(JobFileError, match=words):
        render(tmp_path, settings)


@pytest.mark.parametrize(("text", "words"), [
    ("executable = /bin/evil", "set by pylaw"),
    ("+Flavour = $(x)", "macros"),
    ("+Flavour = (", "ClassAd"),
    ("no equals sign", "command = value"),
    ("bad-name = 1", "neither a submit command"),
])
def test_bad_submit_options_are_refused(text, words):
    with pytest.raises(JobFileError, match=words):
        parse_submit_options(text)


def test_job_dir_with_a_macro_is_refused(tmp_path):
    with pytest.raises(JobFileError, match="macros"):
        render(tmp_path, job_dir=str(tmp_path / "$(Owner)"))


def test_capabilities_follow_the_mode(tmp_path):
    shared = HTCondorJobManager(str(tmp_path), HTCondorSettings(max_cluster_size=250)).capabilities
    assert (shared.arrays, shared.max_array_size, shared.find_by_name, shared.exit_codes) == (True, 250, True, True)
    assert shared.shared_filesystem and not shared.file_transfer
    transfer = HTCondorJobManager(str(tmp_path), HTCondorSettings(file_transfer=True)).capabilities
    assert transfer.file_transfer and not transfer.shared_filesystem


def test_config_errors_name_the_section(tmp_path, monkeypatch):
    import luigi

    from pylaw.workflow.htcondor import HTCondorWorkflow

    config = tmp_path / "luigi.cfg"
    config.write_text("[htcondor]\nrequirements = Memory >\n")
    luigi.configuration.LuigiConfigParser.add_config_path(str(config))
    try:
        task = type("T", (), {"computing_element": lambda self: None})()
        with pytest.raises(ConfigError, match=r"\[htcondor\].*not a valid ClassAd"):
            HTCondorWorkflow.htcondor_settings(task)  # type: ignore[arg-type]
    finally:
        luigi.configuration.LuigiConfigParser._config_paths.remove(str(config))
        # reload() reads the remaining files into the same parser, which keeps the removed
        # file's sections: a fresh parser, or [htcondor] leaks into every later test
        luigi.configuration.LuigiConfigParser._instance = None


def test_a_soft_kill_reaches_the_branch_at_once_and_logs_are_staged(tmp_path):
    """HTCondor's remove/hold sends SIGTERM to the executable only: it must not wait for the branch."""
    ctx = context(tmp_path, command=["bash", "-c", "sleep 300", "branch"], env={}, venv="")
    (batch,) = HTCondorJobFileFactory().render([JobRequest("1", (7,))], ctx, per_file=1)
    script = os.path.join(os.path.dirname(batch.path), f"{batch.name}.sh")
    job = subprocess.Popen(["bash", script, "0"], stdout=subprocess.PIPE, text=True)
    log_dir = tmp_path / "jobs" / "logs"
    time.sleep(1)
    started = time.monotonic()
    job.terminate()
    out, _ = job.communicate(timeout=30)
    assert time.monotonic() - started < 5, "the branch was not killed with the executable"
    assert job.returncode == 4 and "terminated by signal" in out  # the wrapper's "task failed"
    assert (log_dir / "job1_attempt1_branch7.log").exists()
    assert subprocess.run(["pgrep", "-f", "sleep 300"], capture_output=True).returncode == 1
