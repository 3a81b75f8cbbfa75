"""A throw-away analysis checkout (a real git repository) with one workflow, for the bundle tests."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import luigi.configuration
import pytest

TASKS = '''
import os
import sys

import luigi
import luigi.configuration

import pylaw
from pylaw.workflow.local import LocalWorkflow
from pylaw.workflow.slurm import SlurmWorkflow


class {family}(pylaw.Task, LocalWorkflow, SlurmWorkflow):
    n = luigi.IntParameter(default=3)

    def create_branch_map(self):
        return list(range(self.n))

    def output(self):
        return self.local_target(f"sq_{{self.branch}}.json")

    def remote_job_env(self):
        return {{"PYLAW_STORE": "outputs"}}  # relative: the job's working directory

    def run(self):
        from {package} import helper
        self.output().dump({{"branch": self.branch, "square": helper.square(self.branch_data),
                            "python": sys.executable, "version": list(sys.version_info[:2]),
                            "greeting": luigi.configuration.get_config().get("analysis_test", "greeting", "none"),
                            "luigi": luigi.__file__, "pylaw": pylaw.__file__, "cwd": os.getcwd()}})
'''


@dataclass
class Repo:
    root: Path
    package: str
    module: str
    family: str

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.root), "-c", "user.name=t", "-c", "user.email=t@example.org",
                               *args], check=True, capture_output=True, text=True).stdout

    def task(self, **params):
        return getattr(sys.modules[self.module], self.family)(version="v1", **params)


def make_repo(where: Path) -> Repo:
    """``<where>/analysis``: a committed package ``ana_<id>`` with a workflow, a helper, a script,
    a symlink to a tracked file, its luigi.cfg, plus an untracked file; imported from ``sys.path``."""
    tag = uuid.uuid4().hex[:8]
    package, family = f"ana_{tag}", f"Sq{tag}"
    root = where / "analysis"
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    (root / package / "tasks.py").write_text(TASKS.format(family=family, package=package))
    (root / package / "helper.py").write_text("def square(x):\n    return x * x\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    (root / "README").write_text("readme\n")
    (root / "luigi.cfg").write_text("[analysis_test]\ngreeting = from the bundled config\n")
    os.symlink("README", root / "LINKED")
    repo = Repo(root, package, f"{package}.tasks", family)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    repo.git("add", ".")
    repo.git("commit", "-q", "-m", "analysis")
    (root / "untracked.txt").write_text("not in git\n")
    sys.path.insert(0, str(root))
    importlib.import_module(repo.module)
    return repo


@pytest.fixture
def repo(tmp_path):
    """A fresh analysis checkout on sys.path, with bundles cached in the test's own directory."""
    made = make_repo(tmp_path)
    config = luigi.configuration.get_config()
    if not config.has_section("bundle"):
        config.add_section("bundle")
    config.set("bundle", "cache_dir", str(tmp_path / "bundles"))
    yield made
    config.remove_option("bundle", "cache_dir")
    sys.path.remove(str(made.root))
