"""The job wrapper script (bash) and the Slurm job file, run without a batch system.

The wrapper is executed for real with a small Python "branch command" that records its
argv, so quoting is checked end to end through bash, not by inspecting text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pylaw.errors import JobFileError
from pylaw.job.base import JobContext, JobRequest
from pylaw.job.files import copy_wrapper, job_environment
from pylaw.job.slurm import SlurmJobFileFactory

RECORDER = """
import json, sys, os
branch = sys.argv[-1].split("=", 1)[1]
with open(os.path.join(os.environ["OUT"], f"argv_{branch}.json"), "w") as f:
    json.dump(sys.argv[1:], f)
sys.exit(int(os.environ.get("EXIT_" + branch, "0")))
"""

NASTY = ["a b", "'single'", '"double"', "$(touch PWNED)", "`touch PWNED2`", "line1\nline2", "$HOME", "\\",
         "*", "", "-x", "--flag=1"]


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "recorder.py").write_text(RECORDER)
    out = tmp_path / "out"
    out.mkdir()
    context = JobContext(command=[sys.executable, str(tmp_path / "recorder.py"), *NASTY],
                         job_dir=str(tmp_path / "jobs"), task_name="T")
    return tmp_path, out, context


def run_job(tmp_path, out, context, branches, **env):
    (batch,) = SlurmJobFileFactory().render([JobRequest("7", tuple(branches), 2)], context, per_file=1)
    environ = {**os.environ, "OUT": str(out), **env}
    result = subprocess.run(["bash", batch.path], env=environ, cwd=tmp_path, capture_output=True, text=True)
    return batch, result


def test_values_reach_the_command_verbatim(setup):
    tmp_path, out, context = setup
    _, result = run_job(tmp_path, out, context, [3, 4])
    assert result.returncode == 0, result.stdout + result.stderr
    for branch in (3, 4):
        assert json.loads((out / f"argv_{branch}.json").read_text()) == [*NASTY, f"--branch={branch}"]
    assert not list(tmp_path.glob("PWNED*"))
    assert "pylaw-job: branch 3 ok rc=0" in result.stdout


def test_exit_codes_distinguish_task_failure_missing_outputs_and_bootstrap(setup):
    tmp_path, out, context = setup
    _, result = run_job(tmp_path, out, context, [1, 2], EXIT_2="5")
    assert result.returncode == 5 and "branch 2 missing-outputs rc=5" in result.stdout
    _, result = run_job(tmp_path, out, context, [1, 2], EXIT_1="1", EXIT_2="5")
    assert result.returncode == 4 and "branch 1 failed rc=1" in result.stdout
    (out / "argv_1.json").unlink()
    context.setup_file = str(tmp_path / "does_not_exist.sh")
    _, result = run_job(tmp_path, out, context, [1])
    assert result.returncode == 3 and "bootstrap failed" in result.stdout
    assert not (out / "argv_1.json").exists()  # no branch ran


def test_bootstrap_hook_runs_before_the_branches_and_logs_are_staged(setup):
    tmp_path, out, context = setup
    (tmp_path / "setup.sh").write_text(f"export EXIT_5=0; touch {tmp_path}/setup_ran\n")
    context.setup_file = str(tmp_path / "setup.sh")
    context.command = [sys.executable, "-c", "print('hello from the branch')"]
    _, result = run_job(tmp_path, out, context, [5])
    assert result.returncode == 0, result.stdout
    assert (tmp_path / "setup_ran").exists()
    log = tmp_path / "jobs" / "logs" / "job7_attempt2_branch5.log"
    assert log.read_text() == "hello from the branch\n"
    assert "hello from the branch" not in result.stdout  # staged, not repeated in the job output


def test_without_log_transfer_branch_logs_go_to_the_job_output(setup):
    tmp_path, out, context = setup
    context.transfer_logs = False
    context.command = [sys.executable, "-c", "print('hello from the branch')"]
    _, result = run_job(tmp_path, out, context, [5])
    assert result.returncode == 0 and "[branch 5] hello from the branch" in result.stdout
    assert not (tmp_path / "jobs" / "logs").exists()


def test_slurm_script_carries_options_and_one_case_per_array_element(tmp_path):
    context = JobContext(command=["python", "-m", "x"], job_dir=str(tmp_path), task_name="T", walltime=90,
                         options={"partition": "short", "account": ""}, extra_options=["--mem=2G"])
    requests = [JobRequest(str(i), (2 * i, 2 * i + 1)) for i in range(3)]
    (batch,) = SlurmJobFileFactory().render(requests, context, per_file=10)
    with open(batch.path) as f:
        text = f.read()
    assert "#SBATCH --array=0-2" in text and "#SBATCH --partition=short" in text
    assert "#SBATCH --time=2" in text and "#SBATCH --mem=2G" in text and "account" not in text
    assert "2) PYLAW_JOB_KEY=2 PYLAW_ATTEMPT=1 PYLAW_BRANCHES='4 5' ;;" in text
    assert len(SlurmJobFileFactory().render(requests, context, per_file=1)) == 3


def test_job_files_refuse_credentials_and_broken_options(tmp_path):
    context = JobContext(command=["x"], job_dir=str(tmp_path), env={"MY_API_TOKEN": "secret"})
    with pytest.raises(JobFileError, match="credential"):
        job_environment(context)
    context = JobContext(command=["x"], job_dir=str(tmp_path), extra_options=["--comment=a\n#SBATCH --x"])
    with pytest.raises(JobFileError, match="line break"):
        SlurmJobFileFactory().render([JobRequest("0", (0,))], context, per_file=1)


def test_wrapper_is_copied_once(tmp_path):
    path = copy_wrapper(str(tmp_path))
    mtime = os.stat(path).st_mtime_ns
    assert copy_wrapper(str(tmp_path)) == path and os.stat(path).st_mtime_ns == mtime


SHARED_SCRIPT = """#!/usr/bin/env bash
#SBATCH --job-name=pylaw_Sq_0123456789ab
#SBATCH --output=/store/_pylaw_local_jobs/pylaw_Sq_0123456789ab_%a.out
#SBATCH --array=0-1
#SBATCH --time=2
#SBATCH --partition=short
#SBATCH --mem=2G

# pylaw: the job number, attempt and branches of each array element
case "${SLURM_ARRAY_TASK_ID:-0}" in
    0) PYLAW_JOB_KEY=0 PYLAW_ATTEMPT=1 PYLAW_BRANCHES='0 1' ;;
    1) PYLAW_JOB_KEY=1 PYLAW_ATTEMPT=2 PYLAW_BRANCHES=2 ;;
    *) echo "pylaw-job: no job for array index ${SLURM_ARRAY_TASK_ID}"; exit 3 ;;
esac
export PYLAW_JOB_KEY PYLAW_ATTEMPT PYLAW_BRANCHES
export PYLAW_SETUP_FILE=/site/setup.sh
export PYLAW_PYTHONPATH=/home/u/ana:/home/u/pylaw
export PYLAW_LOG_DIR=/store/_pylaw_local_jobs/logs
export MY_SETTING=1
exec bash /store/_pylaw_local_jobs/pylaw_wrapper.sh /venv/bin/python -m pylaw.job.branch --module ana.tasks Sq \
'--text=a b $(x)' --workflow=local
""".replace("\\\n", "")


def test_slurm_script_on_a_shared_file_system_is_unchanged_by_bundle_support():
    """Byte for byte what pylaw rendered before bundles existed (captured from main at 4cebb11)."""
    context = JobContext(command=["/venv/bin/python", "-m", "pylaw.job.branch", "--module", "ana.tasks", "Sq",
                                  "--text=a b $(x)", "--workflow=local"],
                         job_dir="/store/_pylaw_local_jobs", task_name="Sq", setup_file="/site/setup.sh",
                         pythonpath=["/home/u/ana", "/home/u/pylaw"], env={"MY_SETTING": "1"}, walltime=90,
                         options={"partition": "short", "account": ""}, extra_options=["--mem=2G"])
    requests = [JobRequest("0", (0, 1)), JobRequest("1", (2,), 2)]
    text = SlurmJobFileFactory().script("pylaw_Sq_0123456789ab", requests, context,
                                        "/store/_pylaw_local_jobs/pylaw_wrapper.sh", array=True)
    assert text == SHARED_SCRIPT
