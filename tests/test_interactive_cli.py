"""Interactive actions through the real ``pyl`` and ``luigi --module`` commands, in subprocesses."""

from __future__ import annotations

import io
import json
import os
import subprocess
import textwrap

import luigi
import pytest

import pylaw
from pylaw.fetch import ALREADY_THERE, FETCHED, REFUSED, REPLACED
from pylaw.interactive import fetch_output
from pylaw.target.local import LocalFileTarget
from tests.conftest import PYTHON, cli_env

TASKS = textwrap.dedent('''
    import luigi
    import pylaw


    class Hist(pylaw.ShiftTask):
        shifts = {"jes_up", "jes_down"}
        sample = luigi.Parameter(default="tth")

        def output(self):
            return self.local_target("hist.json")

        def run(self):
            self.output().dump({"shift": self.shift, "sample": self.sample})


    class Merge(pylaw.Task):
        """Every shift of two samples (one family, equal basenames); two outputs named alike."""

        def requires(self):
            return [self.req(Hist, shift=shift, sample=sample)
                    for shift in ("nominal", "jes_up", "jes_down") for sample in ("tth", "ttbar")]

        def output(self):
            return {"a": self.local_target("a/result.json"), "b": self.local_target("b/result.json")}

        def run(self):
            inputs = [t.load() for t in self.input()]
            self.output()["a"].dump(inputs)
            self.output()["b"].dump(len(inputs))


    class Produce(pylaw.Task, pylaw.LocalWorkflow):
        n = luigi.IntParameter(default=20)

        def create_branch_map(self):
            return list(range(self.n))

        def output(self):
            return self.local_target(f"p_{self.branch}.json")

        def run(self):
            self.output().dump(self.branch)


    class Late(pylaw.Task):
        """Sets what its output needs after Luigi's __init__, as analyses do."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.label = "set-late"

        def output(self):
            return self.local_target(f"{self.label}.json")
''')


@pytest.fixture
def project(tmp_path):
    (tmp_path / "ianalysis.py").write_text(TASKS)
    (tmp_path / "luigi.cfg").write_text("[pylaw]\nmodules = ianalysis\n[core]\nlog_level = WARNING\n")
    return tmp_path


def pyl(project, *args, stdin=None):
    return subprocess.run([os.path.join(os.path.dirname(PYTHON), "pyl"), *args], cwd=project,
                          env=cli_env(project), capture_output=True, text=True, input=stdin, timeout=120)


def luigi_cli(project, *args, stdin=None):
    """``luigi --module ianalysis TASK ...`` as Luigi's users write it (``--fetch-dir`` for the directory)."""
    argv = list(args)
    if "--fetch-output" in argv:
        i = argv.index("--fetch-output") + 2
        if i < len(argv) and not argv[i].startswith("-"):
            argv.insert(i, "--fetch-dir")
    return subprocess.run([os.path.join(os.path.dirname(PYTHON), "luigi"), "--module", "ianalysis", *argv,
                           "--local-scheduler"], cwd=project, env=cli_env(project), capture_output=True,
                          text=True, input=stdin, timeout=120)


COMMANDS = {"pyl": pyl, "luigi": luigi_cli}


def snapshot(root):
    """Every file below ``root`` with its bytes and mtime, and every directory."""
    if not root.exists():
        return None
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def run_merge(project):
    result = pyl(project, "Merge", "--version", "v1")
    assert result.returncode == 0, result.stderr
    assert len(list((project / "store" / "Hist" / "v1").rglob("hist.json"))) == 6


# -- --fetch-output ---------------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
def test_fetch_keeps_shifts_parameter_values_and_basenames_apart(project, command):
    run_merge(project)
    copies = project / "copies"
    result = COMMANDS[command](project, "Merge", "--version", "v1", "--fetch-output", "1", str(copies))
    assert result.returncode == 0, result.stderr
    for shift in ("nominal", "jes_up", "jes_down"):
        for sample in ("tth", "ttbar"):
            fetched = copies / "Hist" / "v1" / f"shift={shift}" / f"sample={sample}" / "hist.json"
            assert json.loads(fetched.read_text()) == {"shift": shift, "sample": sample}
    assert len(json.loads((copies / "Merge" / "v1" / "a" / "result.json").read_text())) == 6
    assert json.loads((copies / "Merge" / "v1" / "b" / "result.json").read_text()) == 6
    assert "8 fetched" in result.stdout
    assert not [p for p in copies.rglob("*") if p.name.startswith(".pylaw-tmp")]


@pytest.mark.parametrize("command", COMMANDS)
def test_fetch_never_clobbers_an_existing_file(project, command):
    run_merge(project)
    copies = project / "copies"
    mine = copies / "Merge" / "v1" / "a" / "result.json"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own notes\n")
    before = mine.stat().st_mtime_ns
    result = COMMANDS[command](project, "Merge", "--version", "v1", "--fetch-output", "1", str(copies))
    assert result.returncode == 1
    assert mine.read_bytes() == b"my own notes\n" and mine.stat().st_mtime_ns == before
    assert f"refused file {project / 'store' / 'Merge' / 'v1' / 'a' / 'result.json'}" in result.stdout
    assert "1 refused" in result.stderr and "--fetch-overwrite" in result.stderr and "Traceback" not in result.stderr
    assert (copies / "Merge" / "v1" / "b" / "result.json").exists(), "the other outputs are still fetched"
    again = COMMANDS[command](project, "Merge", "--version", "v1", "--fetch-output", "1", str(copies))
    assert again.returncode == 1 and "7 already there, 1 refused" in again.stdout
    assert mine.read_bytes() == b"my own notes\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_fetch_overwrite_replaces_what_differs(project, command):
    run_merge(project)
    copies = project / "copies"
    mine = copies / "Merge" / "v1" / "a" / "result.json"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"stale\n")
    result = COMMANDS[command](project, "Merge", "--version", "v1", "--fetch-output", "0", str(copies),
                               "--fetch-overwrite")
    assert result.returncode == 0, result.stderr
    assert mine.read_bytes() == (project / "store" / "Merge" / "v1" / "a" / "result.json").read_bytes()
    assert "1 fetched, 1 replaced" in result.stdout


class HalfDownload(LocalFileTarget):
    """A copy that dies half-way, as an interrupted transfer does."""

    def copy_to(self, destination):
        with open(destination, "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt


class Interrupted(pylaw.Task):
    def output(self):
        return HalfDownload(self.local_path("big.bin"))


def test_interrupted_fetch_leaves_no_file_that_looks_complete(tmp_path):
    task = Interrupted(version="v1")
    os.makedirs(task.local_path())
    with open(task.local_path("big.bin"), "wb") as f:
        f.write(b"x" * 1000)
    with pytest.raises(KeyboardInterrupt):
        fetch_output(task, 0, str(tmp_path / "copies"), io.StringIO())
    assert not [p for p in (tmp_path / "copies").rglob("*") if p.is_file()]


class Tree(pylaw.Task):
    """A directory output, and a file outside the store."""

    elsewhere = luigi.Parameter()

    def output(self):
        return {"tree": self.local_target("tree", dir=True), "file": LocalFileTarget(self.elsewhere)}


def test_fetch_directories_and_files_outside_the_store(tmp_path):
    task = Tree(version="v1", elsewhere=str(tmp_path / "outside" / "notes.txt"))
    tree = task.output()["tree"]
    with tree.localize("w") as tmp:
        os.makedirs(os.path.join(tmp.path, "sub"))
        with open(os.path.join(tmp.path, "sub", "a.txt"), "w") as f:
            f.write("a")
    task.output()["file"].dump("notes")
    copies = tmp_path / "copies"
    assert fetch_output(task, 0, str(copies), io.StringIO()) == {FETCHED: 2}
    fetched_tree = copies / os.path.relpath(tree.path, os.environ["PYLAW_STORE"])
    assert fetched_tree.parts[-5:-2] == ("copies", "Tree", "v1")
    assert (fetched_tree / "sub" / "a.txt").read_text() == "a"
    assert (copies / "_outside_store" / str(tmp_path / "outside" / "notes.txt").lstrip("/")).read_text() == "notes"
    assert fetch_output(task, 0, str(copies), io.StringIO()) == {ALREADY_THERE: 2}
    (fetched_tree / "sub" / "mine.txt").write_text("mine")
    assert fetch_output(task, 0, str(copies), io.StringIO()) == {ALREADY_THERE: 1, REFUSED: 1}
    assert (fetched_tree / "sub" / "mine.txt").read_text() == "mine"
    assert fetch_output(task, 0, str(copies), io.StringIO(), overwrite=True) == {ALREADY_THERE: 1, REPLACED: 1}
    assert sorted(os.listdir(fetched_tree / "sub")) == ["a.txt"]
    assert sorted(os.listdir(fetched_tree.parent)) == ["tree"], "no temporary leftovers"


# -- one action per command ---------------------------------------------------------------

@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("actions", [("--fetch-output", "0", "{copies}", "--remove-output", "0", "--yes"),
                                     ("--print-status", "0", "--remove-output", "0", "--yes"),
                                     ("--print-deps", "1", "--print-output", "1")])
def test_combined_actions_are_refused_and_nothing_is_done(project, command, actions):
    run_merge(project)
    store = snapshot(project / "store")
    argv = [a.format(copies=project / "copies") for a in actions]
    result = COMMANDS[command](project, "Merge", "--version", "v1", *argv)
    assert result.returncode == 2
    order = ["--print-deps", "--print-status", "--print-output", "--remove-output", "--fetch-output"]
    flags = sorted((a for a in argv if a in order), key=order.index)
    assert result.stderr.strip() == (f"pylaw: error: {flags[0]} and {flags[1]} given together: one interactive "
                                     "action per command (nothing was done)")
    assert result.stdout == ""
    assert snapshot(project / "store") == store and not (project / "copies").exists()


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("depth", ["-2", "abc"])
def test_bad_depth_is_a_usage_error(project, command, depth):
    result = COMMANDS[command](project, "Merge", "--version", "v1", "--print-status", depth)
    assert result.returncode == 2 and "--print-status" in result.stderr and "depth" in result.stderr.lower()
    assert "Traceback" not in result.stderr and not (project / "store").exists()


# -- --print-status -----------------------------------------------------------------------

def test_print_status_names_the_missing_branches_as_ranges(project):
    assert pyl(project, "Produce", "--version", "v1", "--branches", "0-2,6,8-12").returncode == 0
    result = pyl(project, "Produce", "--version", "v1", "--print-status", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "> Produce(n=20): partial 9/20",
        f"    9/20 in {project / 'store' / 'Produce' / 'v1' / 'n=20'}",
        "    missing branches: 3-5,7,13-19",
    ]


def test_print_status_counts_what_it_does_not_list(project):
    store = project / "store" / "Produce" / "v1" / "n=300"
    store.mkdir(parents=True)
    for branch in range(0, 300, 2):
        (store / f"p_{branch}.json").write_text(str(branch))
    lines = pyl(project, "Produce", "--version", "v1", "--n", "300", "--print-status", "0").stdout.splitlines()
    shown = ",".join(str(n) for n in range(1, 100, 2))
    assert lines[2] == f"    missing branches: {shown},... (150 in 150 ranges)"


# -- luigi --module and pyl alike ---------------------------------------------------------

@pytest.mark.parametrize("action", [("--print-deps", "-1"), ("--print-status", "-1"), ("--print-status", "1"),
                                    ("--print-output", "1"), ("--remove-output", "1")])
def test_every_action_gives_the_same_through_luigi_and_pyl(project, action):
    assert pyl(project, "Produce", "--version", "v1", "--n", "6", "--branches", "1-3").returncode == 0
    run_merge(project)
    store = snapshot(project / "store")
    for task in (["Merge", "--version", "v1"], ["Produce", "--version", "v1", "--n", "6"]):
        through_pyl = pyl(project, *task, *action, stdin="")  # --remove-output: stdin closed means no
        through_luigi = luigi_cli(project, *task, *action, stdin="")
        assert through_pyl.returncode == through_luigi.returncode == 0, through_luigi.stderr
        assert through_pyl.stdout == through_luigi.stdout and through_pyl.stdout
        assert through_luigi.stderr == ""
    assert snapshot(project / "store") == store


def test_remove_output_through_luigi_asks_and_removes(project):
    run_merge(project)
    declined = luigi_cli(project, "Merge", "--version", "v1", "--remove-output", "1", stdin="n\n")
    assert declined.returncode == 0 and "remove these 8 outputs? [y/N]" in declined.stdout
    assert "nothing removed" in declined.stdout and len(list((project / "store").rglob("*.json"))) == 8
    accepted = luigi_cli(project, "Merge", "--version", "v1", "--remove-output", "0", stdin="y\n")
    assert accepted.returncode == 0 and "removed 2 outputs" in accepted.stdout
    assert not (project / "store" / "Merge" / "v1" / "a" / "result.json").exists()
    assert len(list((project / "store" / "Hist").rglob("*.json"))) == 6
    forced = luigi_cli(project, "Merge", "--version", "v1", "--remove-output", "1", "--yes")
    assert forced.returncode == 0 and "removed 6 outputs" in forced.stdout
    assert not list((project / "store").rglob("*.json"))


def test_fetch_through_luigi_equals_pyl(project):
    run_merge(project)
    by_pyl = pyl(project, "Merge", "--version", "v1", "--fetch-output", "1", str(project / "copies"))
    by_luigi = luigi_cli(project, "Merge", "--version", "v1", "--fetch-output", "1", str(project / "copies"))
    assert by_pyl.returncode == by_luigi.returncode == 0
    assert "8 fetched" in by_pyl.stdout and "8 already there" in by_luigi.stdout
    assert by_luigi.stdout.replace("already there", "fetched").replace("8 fetched (", "") == \
        by_pyl.stdout.replace("8 fetched (", "")


def test_the_action_sees_the_task_after_its_own_init(project):
    result = luigi_cli(project, "Late", "--version", "v1", "--print-output", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{project / 'store' / 'Late' / 'v1' / 'set-late.json'}\n"


def test_luigi_runs_nothing_after_the_action(project):
    """Luigi runs nothing after the action: no scheduling, no output."""
    result = luigi_cli(project, "Merge", "--version", "v1", "--print-status", "1")
    assert result.returncode == 0 and "> Merge(): missing" in result.stdout
    assert not (project / "store").exists() and "Scheduled" not in result.stderr + result.stdout


# -- pylaw config ---------------------------------------------------------------------------

def test_config_lists_only_the_files_read(project):
    result = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pylaw"), "config"], cwd=project,
                            env=cli_env(project), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"# config files read: {project / 'luigi.cfg'}"
    elsewhere = subprocess.run([os.path.join(os.path.dirname(PYTHON), "pylaw"), "config"], cwd=project.parent,
                               env=cli_env(project, LUIGI_CONFIG_PATH=str(project / "absent.cfg")),
                               capture_output=True, text=True)
    assert elsewhere.stdout.splitlines()[0] == "# config files read: none"
