"""The command line, driven for real in subprocesses."""

import json
import os
import subprocess
import textwrap

import pytest

from tests.conftest import PYTHON, cli_env

TASKS = textwrap.dedent('''
    import luigi
    import pylaw


    class Produce(pylaw.Task, pylaw.LocalWorkflow):
        n = luigi.IntParameter(default=5)

        def create_branch_map(self):
            return list(range(self.n))

        def output(self):
            return self.local_target(f"p_{self.branch}.json")

        def run(self):
            self.output().dump({"branch": self.branch, "label": self.version})


    class Combine(pylaw.Task):
        n = luigi.IntParameter(default=5)

        def requires(self):
            return self.req(Produce)

        def output(self):
            return self.local_target("sum.json")

        def run(self):
            self.output().dump(sum(t.load()["branch"] for t in self.input().values()))
''')


@pytest.fixture
def project(tmp_path):
    (tmp_path / "mytasks.py").write_text(TASKS)
    (tmp_path / "luigi.cfg").write_text("[pylaw]\nmodules = mytasks\n[core]\nlog_level = WARNING\n")
    return tmp_path


def pyl(project, *args, stdin=None, command="pyl"):
    exe = os.path.join(os.path.dirname(PYTHON), command)
    return subprocess.run([exe, *args], cwd=project, env=cli_env(project), capture_output=True, text=True,
                          input=stdin, timeout=120)


def test_run_through_the_index_then_make_like(project):
    first = pyl(project, "Combine", "--version", "v1", "--local")
    assert first.returncode == 0, first.stderr
    result = project / "store" / "Combine" / "v1" / "n=5" / "sum.json"
    assert json.loads(result.read_text()) == 10
    assert json.loads((project / "index.json").read_text())["tasks"]["Produce"] == "mytasks"
    mtime = result.stat().st_mtime_ns
    again = pyl(project, "Combine", "--version", "v1")
    assert again.returncode == 0 and result.stat().st_mtime_ns == mtime


def test_pylaw_run_equals_pyl(project):
    result = pyl(project, "run", "Produce", "--version", "v2", "--branches", "1-2", command="pylaw")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(project / "store" / "Produce" / "v2" / "n=5")) == ["p_1.json", "p_2.json"]


def test_luigi_cli_runs_pylaw_tasks(project):
    exe = os.path.join(os.path.dirname(PYTHON), "luigi")
    result = subprocess.run([exe, "--module", "mytasks", "Combine", "--version", "v1", "--local-scheduler"],
                            cwd=project, env=cli_env(project), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (project / "store" / "Combine" / "v1" / "n=5" / "sum.json").exists()


def test_failure_gives_nonzero_exit(project):
    (project / "broken.py").write_text(TASKS.replace('"label": self.version', '"label": 1 / 0'))
    result = pyl(project, "Combine", "--module", "broken", "--version", "v1")
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr + result.stdout


def test_unknown_task_is_a_clear_error(project):
    result = pyl(project, "Combin", "--version", "v1")
    assert result.returncode == 2
    assert "no indexed module defines the task 'Combin'" in result.stderr and "Did you mean Combine" in result.stderr


def test_bad_parameter_value_is_a_clear_error(project):
    result = pyl(project, "Produce", "--version", "v1", "--branches", "5-2")
    assert result.returncode == 2 and "--branches" in result.stderr and "ends before it starts" in result.stderr


def test_branch_out_of_range_from_cli(project):
    result = pyl(project, "Produce", "--version", "v1", "--branch", "7")
    assert result.returncode == 2 and "branch 7 is not in the branch map of Produce (0-4)" in result.stderr
    negative = pyl(project, "Produce", "--version", "v1", "--branch", "-5")
    assert negative.returncode == 2 and "--branch -5 is not a branch of Produce" in negative.stderr
    assert "Traceback" not in negative.stderr and not (project / "store" / "Produce").exists()


def test_print_status_partial_then_complete(project):
    pyl(project, "Produce", "--version", "v1", "--branches", "0-2")
    status = pyl(project, "Combine", "--version", "v1", "--print-status", "1")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].startswith("> Combine(n=5): missing")
    assert any("Produce(" in line and "partial 3/5" in line for line in lines)
    assert any("3/5 in " + str(project / "store" / "Produce" / "v1" / "n=5") in line for line in lines)
    assert not (project / "store" / "Combine").exists(), "an interactive action must not run the task"
    pyl(project, "Combine", "--version", "v1")
    status = pyl(project, "Combine", "--version", "v1", "--print-status", "-1")
    assert "Combine(n=5): complete" in status.stdout and "5/5 in" in status.stdout


def test_print_status_depth_zero(project):
    status = pyl(project, "Combine", "--version", "v1", "--print-status", "0")
    assert "Produce" not in status.stdout and "Combine" in status.stdout


def test_print_deps_and_output(project):
    deps = pyl(project, "Combine", "--version", "v1", "--print-deps", "-1")
    assert deps.stdout.splitlines()[0].startswith("> Combine") and "    > Produce(" in deps.stdout
    outputs = pyl(project, "Combine", "--version", "v1", "--print-output", "1").stdout.split()
    assert outputs[0].endswith("Combine/v1/n=5/sum.json") and len(outputs) == 6


def test_remove_output_asks_first(project):
    pyl(project, "Combine", "--version", "v1")
    declined = pyl(project, "Combine", "--version", "v1", "--remove-output", "1", stdin="n\n")
    assert "nothing removed" in declined.stdout
    assert (project / "store" / "Combine" / "v1" / "n=5" / "sum.json").exists()
    accepted = pyl(project, "Combine", "--version", "v1", "--remove-output", "0", stdin="y\n")
    assert "removed 1 outputs" in accepted.stdout
    assert not (project / "store" / "Combine" / "v1" / "n=5" / "sum.json").exists()
    assert len(os.listdir(project / "store" / "Produce" / "v1" / "n=5")) == 5
    forced = pyl(project, "Combine", "--version", "v1", "--remove-output", "1", "--yes")
    assert "removed 5 outputs" in forced.stdout
    assert os.listdir(project / "store" / "Produce" / "v1" / "n=5") == []


def test_fetch_output(project, tmp_path):
    pyl(project, "Combine", "--version", "v1")
    fetched = pyl(project, "Combine", "--version", "v1", "--fetch-output", "1", str(tmp_path / "copies"))
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads((tmp_path / "copies" / "Combine" / "v1" / "n=5" / "sum.json").read_text()) == 10
    assert len(os.listdir(tmp_path / "copies" / "Produce" / "v1" / "n=5")) == 5


def test_index_list_and_config(project):
    index = pyl(project, "index", command="pylaw")
    assert index.returncode == 0 and "indexed 2 tasks" in index.stdout
    listing = pyl(project, "list", command="pylaw")
    assert "Combine" in listing.stdout and "mytasks" in listing.stdout
    config = pyl(project, "config", command="pylaw")
    assert "[pylaw]" in config.stdout and "modules = mytasks" in config.stdout
    assert f"# store root: {project / 'store'}" in config.stdout


def test_malformed_config_is_a_clear_error(project):
    (project / "luigi.cfg").write_text("[pylaw]\nmodules = mytasks\ncentral_scheduler = perhaps\n")
    result = pyl(project, "Combine", "--version", "v1")
    assert result.returncode == 2 and "[pylaw] config section is malformed" in result.stderr


def test_missing_module_is_a_clear_error(project):
    (project / "luigi.cfg").write_text("[pylaw]\nmodules = nothere.tasks\n")
    result = pyl(project, "Combine", "--version", "v1")
    assert result.returncode == 2 and "cannot import task module 'nothere.tasks'" in result.stderr
