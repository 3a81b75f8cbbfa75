"""Provenance records of remote outputs, on a real xrootd server: uploaded to the same
storage element, atomically, never in the outputs' directory; read back across the chain."""

from __future__ import annotations

import json
import os
import zlib

import luigi
import pytest

import pylaw
from pylaw import provenance
from pylaw.cli import provenance as provenance_cli
from pylaw.target.base import TMP_PREFIX
from pylaw.target.remote.checksum import normalize
from pylaw.target.remote.target import RemoteFileTarget, forget_filesystems
from tests.conftest import build


class RemoteCubes(pylaw.Task, pylaw.LocalWorkflow):
    storage = luigi.Parameter()

    def create_branch_map(self):
        return list(range(4))

    def output(self):
        return RemoteFileTarget(f"cubes/{self.version}/c_{self.branch}.json", fs=self.storage)

    def run(self):
        self.output().dump({"branch": self.branch, "cube": self.branch ** 3})


class LocalSum(pylaw.Task):
    storage = luigi.Parameter()

    def requires(self):
        return self.req(RemoteCubes)

    def output(self):
        return self.local_target("sum.json")

    def run(self):
        self.output().dump({"sum": sum(target.load()["cube"] for target in self.input())})


@pytest.mark.parametrize("workers", [1, 2])
def test_remote_outputs_get_their_records_on_the_same_storage(make_fs, workers):
    fs = make_fs("root")
    workflow = RemoteCubes(version="v1", storage=fs.name)
    assert workflow.output().count() == 0  # the parent talks to the storage before it forks
    assert build(workflow, workers=workers)
    assert sorted(fs.listdir("cubes/v1")) == [f"c_{i}.json" for i in range(4)]  # outputs only
    records = fs.listdir(f"{provenance.RECORD_DIR}/cubes/v1")
    assert sorted(records) == [f"c_{i}.json.json" for i in range(4)]  # no temporaries left
    assert not [name for name in records if name.startswith(TMP_PREFIX)]
    with RemoteFileTarget(f"{provenance.RECORD_DIR}/cubes/v1/c_2.json.json", fs=fs).open("r") as f:
        record = json.loads(f.read())
    assert record["parameters"]["branch"] == "2" and record["task"]["family"] == "RemoteCubes"
    (output,) = record["outputs"]
    assert output["fs"] == fs.name and output["path"] == "/cubes/v1/c_2.json"
    assert output["url"] == fs.url("/cubes/v1/c_2.json")
    assert provenance.find_record(workflow.as_branch(2).output()) == record


def test_a_chain_through_remote_inputs(make_fs, isolated):
    fs = make_fs("root")
    total = LocalSum(version="v1", storage=fs.name)
    assert build(total) and total.output().load() == {"sum": 0 + 1 + 8 + 27}
    record = provenance.find_record(total.output())
    inputs = record["inputs"]
    assert [entry["path"] for entry in inputs] == [f"/cubes/v1/c_{i}.json" for i in range(4)]
    stat = fs.stat("/cubes/v1/c_3.json")
    assert inputs[3]["fs"] == fs.name and (inputs[3]["size"], inputs[3]["mtime"]) == (stat.size, stat.mtime)
    tree = provenance_cli.chain(total.output().path, set())
    assert [node["record"]["parameters"]["branch"] for node in tree["upstream"]] == ["0", "1", "2", "3"]

    # a URL on a configured storage element names the same output
    config = luigi.configuration.get_config()
    config.set(f"storage:{fs.name}", "base", fs.bases[0])
    try:
        forget_filesystems()
        target = provenance.target_for(fs.url("/cubes/v1/c_1.json"))
        assert provenance.find_record(target)["parameters"]["branch"] == "1"
    finally:
        config.remove_section(f"storage:{fs.name}")


@pytest.mark.parametrize("backend", ["root", "xrdcl", "nginx"])
def test_remote_inputs_carry_the_checksum_their_storage_reports(make_fs, isolated, backend):
    """xrootd reports adler32 (through gfal2 and XrdCl alike): the record has it; nginx's WebDAV reports none."""
    fs = make_fs(backend)
    total = LocalSum(version="v1", storage=fs.name)
    assert build(total)
    inputs = provenance.find_record(total.output())["inputs"]
    for branch, entry in enumerate(inputs):
        with RemoteFileTarget(entry["path"], fs=fs).open("r") as f:
            data = f.read().encode()
        if backend == "nginx":
            assert "adler32" not in entry and "checksum_error" not in entry
        else:  # the value the server itself reports, and the one of the bytes it holds
            assert entry["adler32"] == fs.interface.checksum(fs.url(entry["path"]), "adler32")
            assert entry["adler32"] == normalize("adler32", f"{zlib.adler32(data):x}"), branch
    tree = provenance_cli.chain(total.output().path, set())
    assert [node["record"]["outputs"][0]["path"] for node in tree["upstream"]] == [e["path"] for e in inputs]


def test_input_checksums_can_be_switched_off(make_fs, isolated):
    fs = make_fs("xrdcl")
    config = luigi.configuration.get_config()
    config.set("provenance", "input_checksums", "false")
    provenance.settings.cache_clear()  # read once per process: this test stands for a new one
    try:
        assert build(LocalSum(version="v1", storage=fs.name))
    finally:
        config.remove_option("provenance", "input_checksums")
        provenance.settings.cache_clear()
    record = provenance.find_record(LocalSum(version="v1", storage=fs.name).output())
    assert record["inputs"] and all("adler32" not in entry for entry in record["inputs"])


def test_a_fetched_remote_output_keeps_its_record(make_fs, isolated, tmp_path):
    import io

    from pylaw.interactive import fetch_output

    fs = make_fs("xrdcl")
    workflow = RemoteCubes(version="v1", storage=fs.name)
    assert build(workflow)
    copies = tmp_path / "copies"
    assert fetch_output(workflow, 0, str(copies), io.StringIO()) == {"fetched": 4}
    fetched = provenance.target_for(str(copies / fs.name / "cubes" / "v1" / "c_2.json"))
    record = provenance.find_record(fetched)
    assert record["task"]["family"] == "RemoteCubes" and record["parameters"]["branch"] == "2"
    assert record["outputs"][0]["fs"] == fs.name and record["copy"]["source"] == fs.url("/cubes/v1/c_2.json")
    assert sorted(os.listdir(copies / fs.name / "cubes" / "v1")) == [f"c_{i}.json" for i in range(4)]
