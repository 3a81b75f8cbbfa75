"""``[ce:NAME]`` sections and ``--ce NAME``, through the real ``pyl``/``pylaw``; one of them a real Slurm."""

from __future__ import annotations

import glob
import os
import subprocess

import pytest

from tests.conftest import PYTHON, ROOT, cli_env
from tests.services.slurm import slurm_cluster  # noqa: F401 - the fixture

TASKS = '''
import luigi
import pylaw


class Local(pylaw.Task, pylaw.LocalWorkflow):
    def create_branch_map(self):
        return [0, 1]

    def output(self):
        return self.local_target(f"l_{self.branch}.txt")

    def run(self):
        self.output().dump("x")
'''

CONFIG = """
[pylaw]
modules = cetasks

[ce:here]
type = local

[ce:grid]
type = arc
endpoint = arc.example.org

[ce:pool]
type = htcondor
pool = collector.example.org

[ce:testslurm]
type = slurm
partition = debug
memory = 100M
walltime = 10m
sbatch_options = --comment=chosen-by-ce
"""


def pylaw_cli(tmp_path, *args, command="pyl", config=CONFIG):
    (tmp_path / "cetasks.py").write_text(TASKS)
    (tmp_path / "luigi.cfg").write_text(config)
    return subprocess.run([os.path.join(os.path.dirname(PYTHON), command), *args], cwd=tmp_path,
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)


def test_ce_list_shows_names_types_and_settings(tmp_path):
    result = pylaw_cli(tmp_path, "ce", "list", command="pylaw")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert [line[:2] for line in lines] == [["here", "local"], ["grid", "arc"], ["pool", "htcondor"],
                                            ["testslurm", "slurm"]]
    assert "partition=debug," in result.stdout


def test_local_ce_runs_here(tmp_path):
    result = pylaw_cli(tmp_path, "Local", "--version", "v1", "--ce", "here")
    assert result.returncode == 0, result.stderr
    assert len(glob.glob(str(tmp_path / "store" / "Local" / "v1" / "l_*.txt"))) == 2


@pytest.mark.parametrize("args,words", [
    (["--ce", "nowhere"], ["unknown computing element --ce 'nowhere'", "here (local)", "testslurm (slurm)"]),
    (["--ce", "testslrum"], ["did you mean 'testslurm'"]),
    (["--ce", "testslurm"], ["Local cannot run on --ce testslurm (a slurm computing element)",
                             "add pylaw.SlurmWorkflow to its base classes"]),
    (["--ce", "pool"], ["Local cannot run on --ce pool", "add pylaw.HTCondorWorkflow to its base classes"]),
    (["--ce", "grid"], ["Local cannot run on --ce grid", "add pylaw.ARCWorkflow to its base classes"]),
    (["--ce", "here", "--workflow", "slurm"], ["--workflow slurm contradicts --ce here"]),
])
def test_bad_choices_are_clear_errors(tmp_path, args, words):
    result = pylaw_cli(tmp_path, "Local", "--version", "v1", *args)
    assert result.returncode == 2, result.stderr
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "store").exists()


@pytest.mark.parametrize("section,words", [
    ("[ce:typo]\ntype = slurm\npartiton = debug\n", ["[ce:typo]", "unknown key 'partiton'", "'partition'"]),
    ("[ce:typo]\npartition = debug\n", ["[ce:typo] has no type", "slurm"]),
    ("[ce:typo]\ntype = pbs\n", ["[ce:typo] has type = 'pbs'", "htcondor"]),
])
def test_malformed_sections_name_section_and_key(tmp_path, section, words):
    result = pylaw_cli(tmp_path, "Local", "--version", "v1", "--ce", "typo", config=CONFIG + section)
    assert result.returncode == 2, result.stderr
    for word in words:
        assert word in result.stderr


def test_slurm_ce_runs_the_workflow_there_with_its_settings(tmp_path, slurm_cluster):  # noqa: F811
    (tmp_path / "luigi.cfg").write_text(CONFIG)
    (tmp_path / "markers").mkdir()
    env = {**os.environ, "PYTHONPATH": ROOT, "PYLAW_STORE": str(tmp_path / "store"),
           "SLURM_CONF": slurm_cluster.conf, "LUIGI_CONFIG_PATH": str(tmp_path / "luigi.cfg")}
    before = {job[0] for job in slurm_cluster.jobs()}
    result = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pyl"), "--module", "tests.workflow.slurm_tasks",
                             "Square", "--version", "v1", "--n", "3", "--ce", "testslurm", "--poll-interval", "1",
                             "--marker-dir", str(tmp_path / "markers")], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    listed = subprocess.run(["squeue", "-h", "-r", "--states=all", "-o", "%i|%j|%P|%k|%l|%m"], env=env,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    ours = [line.split("|") for line in listed if line.split("|")[0] not in before and "pylaw_Square_" in line]
    assert len(ours) == 3, listed
    assert {(part, comment, limit, memory) for _, _, part, comment, limit, memory in ours} == {
        ("debug", "chosen-by-ce", "10:00", "100M")}, "the computing element's settings reached sbatch"
    assert len(glob.glob(str(tmp_path / "store" / "Square" / "v1" / "*" / "square_*.json"))) == 3
