"""--fetch-output and --remove-output on tasks whose outputs live on a real xrootd."""

from __future__ import annotations

import io
import json

import pytest

import pylaw
from pylaw.fetch import ALREADY_THERE, FETCHED, REFUSED, REPLACED
from pylaw.interactive import fetch_output, remove_output
from pylaw.target.collection import TargetCollection
from pylaw.target.remote.target import RemoteDirectoryTarget, RemoteFileTarget
from tests.conftest import build


class RemoteProduce(pylaw.Task):
    def output(self):
        directory = RemoteDirectoryTarget(f"produce/{self.version}", fs="interactive")
        return TargetCollection([directory.child(f"n{i}.json") for i in range(3)])

    def run(self):
        for i, target in enumerate(self.output().values()):
            target.dump({"n": i})


class RemoteCombine(pylaw.Task):
    def requires(self):
        return self.req(RemoteProduce)

    def output(self):
        return RemoteFileTarget(f"combine/{self.version}/sum.json", fs="interactive")

    def run(self):
        total = sum(t.load()["n"] for t in self.input().values())
        with self.output().open("w") as f:
            json.dump(total, f)


@pytest.fixture
def remote_store(make_fs):
    return make_fs("root", name="interactive")


def test_fetch_and_remove_remote_outputs(remote_store, tmp_path) -> None:
    task = RemoteCombine(version="v1")
    assert build(task)
    out = io.StringIO()
    assert fetch_output(task, 1, str(tmp_path / "copies"), out) == {FETCHED: 4}
    copies = tmp_path / "copies" / "interactive"  # the storage element's name, then the path on it
    assert json.loads((copies / "combine" / "v1" / "sum.json").read_text()) == 3
    assert sorted(p.name for p in (copies / "produce" / "v1").iterdir()) == ["n0.json", "n1.json", "n2.json"]
    again = fetch_output(task, 1, str(tmp_path / "copies"), out)
    assert again == {ALREADY_THERE: 4}, "identical files are not downloaded again under the same name"
    (copies / "combine" / "v1" / "sum.json").write_text("mine")
    assert fetch_output(task, 0, str(tmp_path / "copies"), out) == {REFUSED: 1}
    assert (copies / "combine" / "v1" / "sum.json").read_text() == "mine"
    assert fetch_output(task, 0, str(tmp_path / "copies"), out, overwrite=True) == {REPLACED: 1}
    assert json.loads((copies / "combine" / "v1" / "sum.json").read_text()) == 3
    assert remove_output(task, 1, io.StringIO(), confirm=lambda question: True) == {"removed": 4}
    assert remote_store.listdir("combine/v1") == [] and remote_store.listdir("produce/v1") == []
    assert not task.complete()
