"""``pylaw provenance``, ``pylaw reproduce`` and staleness, through the real command line, on
analyses kept in real git repositories made in tmp_path (commits, uncommitted edits, a
clone with a commit the original lacks)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time

import pytest

from tests.conftest import PYTHON, ROOT

BIN = os.path.dirname(PYTHON)

ANALYSIS = '''
import luigi
import pylaw


class Gen(pylaw.Task):
    n = luigi.IntParameter(default=3)

    def output(self):
        return self.local_target("gen.json")

    def run(self):
        self.output().dump({"n": self.n})


class Fit(pylaw.Task):
    exclude_params_store = {"tolerance"}  # not in the output path: only the record knows it
    tolerance = luigi.FloatParameter(default=0.1)

    def requires(self):
        return self.req(Gen)

    def output(self):
        return self.local_target("fit.json")

    def run(self):
        self.output().dump({"gen": self.input().load(), "tolerance": self.tolerance})


class Other(pylaw.Task):
    def output(self):
        return self.local_target("other.json")

    def run(self):
        self.output().dump({})


class Top(pylaw.Task):
    def requires(self):
        return {"fit": self.req(Fit), "other": self.req(Other)}

    def output(self):
        return self.local_target("top.json")

    def run(self):
        self.output().dump({"fit": self.input()["fit"].load()})
'''


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def commit_all(repo, message="change") -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def make_repo(path, files: dict[str, str]):
    path.mkdir()
    git(path, "init", "-q")
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    commit_all(path, "initial")
    return path


class Analysis:
    """A repository with a task module, its store and config outside it, and the two commands."""

    def __init__(self, tmp_path, repo, config=None, store=None):
        self.repo, self.store = repo, store or tmp_path / "store"
        cfg = tmp_path / "luigi.cfg"
        if config is None:
            cfg.write_text("[core]\nlog_level = WARNING\n[pylaw]\nmodules = anamod\n")
            config = cfg
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), ROOT]), "PYLAW_STORE": str(self.store),
                    "PYLAW_INDEX": str(tmp_path / "index.json"), "LUIGI_CONFIG_PATH": str(config)}

    def run(self, command, *args, check=True, **env):
        result = subprocess.run([os.path.join(BIN, command), *map(str, args)], cwd=self.repo, capture_output=True,
                                text=True, timeout=300, env={**self.env, **env})
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def path(self, *parts):
        return self.store.joinpath(*parts)


@pytest.fixture
def analysis(tmp_path):
    return Analysis(tmp_path, make_repo(tmp_path / "repo", {"anamod.py": ANALYSIS}))


def test_provenance_prints_the_chain_upstream(analysis):
    analysis.run("pyl", "Top", "--version", "v1")
    top = analysis.path("Top", "v1", "top.json")
    tree = json.loads(analysis.run("pylaw", "provenance", top, "--json").stdout)
    assert tree["record"]["task"]["family"] == "Top"
    fit, other = tree["upstream"]
    assert fit["record"]["task"]["family"] == "Fit" and other["record"]["task"]["family"] == "Other"
    assert fit["record"]["parameters"]["tolerance"] == "0.1"
    (gen,) = fit["upstream"]
    assert gen["record"]["parameters"]["n"] == "3" and gen["upstream"] == []
    assert gen["output"] == str(analysis.path("Gen", "v1", "n=3", "gen.json"))
    text = analysis.run("pylaw", "provenance", top).stdout
    assert "made by Fit (anamod) --version v1 --tolerance 0.1" in text and git(analysis.repo, "describe",
                                                                                "--always") in text
    missing = analysis.run("pylaw", "provenance", analysis.path("Top", "v9", "top.json"), check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_reproduce_prints_the_command_and_refuses_other_code(analysis, tmp_path):
    recorded = git(analysis.repo, "rev-parse", "HEAD")
    analysis.run("pyl", "Top", "--version", "v1")
    fit = analysis.path("Fit", "v1", "fit.json")
    command = analysis.run("pylaw", "reproduce", fit).stdout.strip()
    assert shlex.split(command) == ["pyl", "--module", "anamod", "Fit", "--version", "v1", "--tolerance", "0.1"]

    with open(analysis.repo / "anamod.py", "a") as f:
        f.write("\n# an uncommitted edit\n")
    dirty = analysis.run("pylaw", "reproduce", fit, check=False)
    assert dirty.returncode == 2 and "(with uncommitted changes)" in dirty.stderr
    assert f"checkout {recorded}" in dirty.stderr and "worktree add" in dirty.stderr

    commit_all(analysis.repo, "later work")
    later = analysis.run("pylaw", "reproduce", fit, check=False)
    assert later.returncode == 2 and f"the record needs {recorded[:7]}" in later.stderr

    git(analysis.repo, "checkout", "-q", recorded)  # what the message says to do
    assert analysis.run("pylaw", "reproduce", fit).stdout.strip() == command
    git(analysis.repo, "checkout", "-q", "-")

    with open(analysis.repo / "anamod.py", "a") as f:
        f.write("\n# never committed\n")
    analysis.run("pyl", "Other", "--version", "v2")
    made_dirty = analysis.run("pylaw", "reproduce", analysis.path("Other", "v2", "other.json"), check=False)
    assert made_dirty.returncode == 2 and "ran from a checkout with uncommitted changes" in made_dirty.stderr


def test_reproduce_refuses_a_commit_the_repository_lacks(analysis, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(analysis.repo), str(clone)], check=True)
    with open(clone / "anamod.py", "a") as f:
        f.write("\n# only in the clone\n")
    only_there = commit_all(clone, "clone work")
    Analysis(tmp_path, clone).run("pyl", "Gen", "--version", "v3")
    refused = analysis.run("pylaw", "reproduce", analysis.path("Gen", "v3", "n=3", "gen.json"), check=False)
    assert refused.returncode == 2
    assert f"commit {only_there}" in refused.stderr and "is not in the repository" in refused.stderr
    assert "fetch" in refused.stderr


def status(analysis, *extra):
    return analysis.run("pyl", "Top", "--version", "v1", "--print-status", "-1", "--stale", *extra).stdout


def test_stale_outputs_are_flagged_and_only_they_removed(analysis):
    analysis.run("pyl", "Top", "--version", "v1")
    assert "0 stale task(s)" in status(analysis)
    gen = analysis.path("Gen", "v1", "n=3", "gen.json")
    later = time.time() + 100
    os.utime(gen, (later, later))  # remade after Fit read it
    text = status(analysis)
    assert "2 stale task(s)" in text and f"its input {gen} changed after it was made" in text
    assert "it requires Fit(tolerance=0.1), which is stale" in text

    removed = analysis.run("pyl", "Top", "--version", "v1", "--remove-output", "-1", "--stale", "--yes").stdout
    assert "removed 2 outputs" in removed
    assert not analysis.path("Fit", "v1", "fit.json").exists() and not analysis.path("Top", "v1", "top.json").exists()
    assert gen.exists() and analysis.path("Other", "v1", "other.json").exists()
    analysis.run("pyl", "Top", "--version", "v1")
    assert "0 stale task(s)" in status(analysis)


def test_a_changed_default_and_a_new_commit_make_outputs_stale(analysis):
    analysis.run("pyl", "Top", "--version", "v1")
    recorded = git(analysis.repo, "describe", "--always")
    source = (analysis.repo / "anamod.py").read_text()
    (analysis.repo / "anamod.py").write_text(source.replace("default=0.1", "default=0.2"))
    uncommitted = status(analysis)
    assert f"made with code {recorded}, the checkout is {recorded}-dirty" in uncommitted
    commit_all(analysis.repo, "tighter fit")
    text = status(analysis)
    assert "made with tolerance=0.1, requested tolerance=0.2" in text
    assert f"made with code {recorded}, the checkout is {git(analysis.repo, 'describe', '--always')}" in text
    assert "4 stale task(s)" in text  # every recorded output: they were made by the older commit

    (analysis.repo / "anamod.py").write_text(source.replace("default=3", "default=4"))
    commit_all(analysis.repo, "more events")
    assert "made from other inputs (1 of them no longer required, 1 new ones)" in status(analysis)


def test_the_example_plot_is_reproduced_from_its_record_alone(tmp_path):
    """Run the example with an upstream parameter changed on the command line, take its final plot
    (fetched: only the copy and the records remain), rebuild it in an empty store from the record
    alone: the same bytes. A plot made without that parameter differs: the comparison can fail."""
    repo = tmp_path / "analysis"
    shutil.copytree(os.path.join(ROOT, "examples"), repo / "examples",
                    ignore=shutil.ignore_patterns("__pycache__"))
    make_repo_in_place(repo)
    config = repo / "examples" / "ttbar" / "luigi.cfg"
    first = Analysis(tmp_path, repo, config=config, store=tmp_path / "store")
    first.run("pyl", "Plot", "--version", "v1", "--local", "--workers", "2", "--Selection-min-jets", "4")
    plot_dir = ("Plot", "v1", "n_chunks=4", "seed=42")
    first.run("pyl", "Plot", "--version", "v1", "--fetch-output", "0", tmp_path / "taken")
    plot = tmp_path / "taken" / os.path.join(*plot_dir) / "mass.png"
    record = json.loads(first.run("pylaw", "provenance", plot, "--json").stdout)["record"]
    assert record["code"]["repository"] == str(repo) and not record["code"]["dirty"]
    assert "min_jets" not in record["parameters"]  # Plot has no such parameter: only Selection's records know it

    clean = Analysis(tmp_path, repo, config=config, store=tmp_path / "clean-store")
    rebuilt = clean.run("pylaw", "reproduce", plot, "--run")
    assert rebuilt.stdout.splitlines()[0] == "pyl --module examples.ttbar.tasks Plot --version v1 --n-chunks 4 " \
                                             "--seed 42 --Selection-min-jets 4"
    again = clean.path(*plot_dir, "mass.png")
    fit = ("Inference", "v1", "n_chunks=4", "seed=42", "inference.json")
    assert json.loads(clean.path(*fit).read_text()) == json.loads(first.path(*fit).read_text())
    assert again.read_bytes() == plot.read_bytes()  # the image itself, byte for byte
    remade = json.loads(clean.run("pylaw", "provenance", again, "--json").stdout)["record"]
    assert (remade["parameters"], remade["code"]) == (record["parameters"], record["code"])

    default = Analysis(tmp_path, repo, config=config, store=tmp_path / "default-store")
    default.run("pyl", "Plot", "--version", "v1", "--local", "--workers", "2")  # min_jets 3, as the code says
    assert json.loads(default.path(*fit).read_text()) != json.loads(first.path(*fit).read_text())
    assert default.path(*plot_dir, "mass.png").read_bytes() != plot.read_bytes()
    stale = first.run("pyl", "Plot", "--version", "v1", "--print-status", "-1", "--stale").stdout
    assert "> Plot(n_chunks=4, seed=42): complete, STALE" in stale  # and the first store says why
    assert "made from other inputs" in stale


def make_repo_in_place(path):
    git(path, "init", "-q")
    commit_all(path, "the analysis")


def test_stale_without_an_action_that_reads_it_is_refused(analysis):
    refused = analysis.run("pyl", "Top", "--version", "v1", "--stale", check=False)
    assert refused.returncode == 2 and "--stale goes with --print-status" in refused.stderr
    assert not analysis.path("Top", "v1", "top.json").exists()  # nothing ran


def test_reproduce_a_branch_and_warn_about_an_output_rewritten_after_its_record(analysis):
    (analysis.repo / "wide.py").write_text('''
import luigi
import pylaw


class Wide(pylaw.Task, pylaw.LocalWorkflow):
    scale = luigi.IntParameter(default=2)

    def create_branch_map(self):
        return list(range(3))

    def output(self):
        return self.local_target(f"w_{self.branch}.json")

    def run(self):
        self.output().dump({"value": self.branch * self.scale})
''')
    commit_all(analysis.repo, "a workflow")
    analysis.run("pyl", "--module", "wide", "Wide", "--version", "v1", "--scale", "5")
    branch = analysis.path("Wide", "v1", "scale=5", "w_2.json")
    command = analysis.run("pylaw", "reproduce", branch).stdout.strip()
    assert shlex.split(command) == ["pyl", "--module", "wide", "Wide", "--branch", "2", "--version", "v1",
                                    "--scale", "5"]  # declaration order: the workflow mixin's, pylaw.Task's, own
    branch.unlink()
    clean = analysis.run("pyl", *shlex.split(command)[1:])  # the command alone remakes the branch
    assert json.loads(branch.read_text()) == {"value": 10}, clean.stderr
    later = time.time() + 100
    os.utime(branch, (later, later))
    warned = analysis.run("pylaw", "provenance", branch)
    assert "was modified after its record was written" in warned.stderr


def test_a_fetched_output_keeps_its_record_where_it_is_taken(analysis, tmp_path):
    analysis.run("pyl", "Top", "--version", "v1")
    copies = tmp_path / "copies"
    for _ in range(2):  # fetched twice: the second finds everything there, and adds no record
        analysis.run("pyl", "Top", "--version", "v1", "--fetch-output", "-1", copies)
    fetched, original = copies / "Fit" / "v1" / "fit.json", analysis.path("Fit", "v1", "fit.json")
    log = copies / ".pylaw-prov" / "Fit" / "v1" / "records.jsonl"
    (line,) = [json.loads(text) for text in log.read_text().splitlines() if text.strip()]
    assert line["copy"]["path"] == str(fetched) and line["copy"]["source"] == str(original)
    assert sorted(os.listdir(fetched.parent)) == ["fit.json"]  # the copy's directory holds the output only
    command = analysis.run("pylaw", "reproduce", original).stdout

    shutil.rmtree(analysis.store)  # the store is gone: the copy alone says what made it
    elsewhere = {"PYLAW_STORE": str(tmp_path / "other-store")}
    tree = json.loads(analysis.run("pylaw", "provenance", fetched, "--json", **elsewhere).stdout)
    assert tree["record"]["task"]["family"] == "Fit" and tree["record"]["parameters"]["tolerance"] == "0.1"
    assert tree["record"]["copy"]["path"] == str(fetched)
    text = analysis.run("pylaw", "provenance", fetched, **elsewhere)
    assert f"fetched from {original}" in text.stdout and "modified after" not in text.stderr
    assert analysis.run("pylaw", "reproduce", fetched, **elsewhere).stdout == command
