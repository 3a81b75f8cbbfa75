"""A LocalWorkflow writing remote outputs, in this process and in forked workers.

The parent talks to the storage (status check) before it forks: the workers must still
reach it (XrdCl and GFAL2 keep threads and connections that a fork does not copy).
"""

from __future__ import annotations

import luigi
import pytest

import pylaw
from pylaw.target.remote.target import RemoteFileTarget
from tests.conftest import build


class RemoteSquares(pylaw.Task, pylaw.LocalWorkflow):
    storage = luigi.Parameter()
    n = luigi.IntParameter(default=12)

    def create_branch_map(self):
        return list(range(self.n))

    def output(self):
        return RemoteFileTarget(f"squares/{self.version}/sq_{self.branch}.json", fs=self.storage)

    def run(self):
        self.output().dump({"branch": self.branch, "square": self.branch ** 2})


@pytest.mark.parametrize("backend_name", ["root", "xrdcl", "dav"])
@pytest.mark.parametrize("workers", [1, 3])
def test_workflow_branches_write_remote_outputs(make_fs, backend_name, workers) -> None:
    fs = make_fs(backend_name)
    workflow = RemoteSquares(version="v1", storage=fs.name)
    assert workflow.output().count() == 0  # the parent lists the storage before forking
    assert build(workflow, workers=workers)
    assert workflow.output().count() == 12
    assert RemoteSquares(version="v1", storage=fs.name, branch=7).output().load() == {"branch": 7, "square": 49}
    assert len(fs.listdir("squares/v1")) == 12  # no temporaries left behind
