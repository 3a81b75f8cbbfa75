"""Hostile input to the real ``pyl`` and ``luigi --module``: clear errors, right exit codes, nothing lost.

Every case runs the installed command in a subprocess against one project whose store holds
finished outputs (the canary); after each case the store must be byte-for-byte unchanged.
``pyl`` must answer with a message naming what is wrong, never a traceback. ``luigi`` reports
its own parse errors through its logger: the project's logging config (``pylaw init``) words
them in one line (:mod:`pylaw.logs`), and the exit code comes from its ``[retcode]``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import textwrap
import time
from dataclasses import dataclass, field

import pytest

from pylaw.cli.init import write_config
from tests.conftest import PYTHON, cli_env
from tests.test_cli import TASKS as PROJECT_TASKS  # Produce (5 branches) and Combine

TASKS = PROJECT_TASKS + textwrap.dedent('''


    class Typed(pylaw.Task):
        n = luigi.IntParameter(default=1)
        mode = luigi.ChoiceParameter(choices=["fast", "slow"], default="fast")
        flag = luigi.BoolParameter(default=False)
        ratio = luigi.FloatParameter(default=1.0)
        timeout = pylaw.DurationParameter(default=60)
        size = pylaw.BytesParameter(default=10)

        def output(self):
            return self.local_target("typed.json")

        def run(self):
            self.output().dump(self.n)


    class NoOutput(pylaw.Task):
        def output(self):
            return self.local_target("never.json")

        def run(self):
            pass


    class Fails(pylaw.Task):
        def output(self):
            return self.local_target("fails.json")

        def run(self):
            raise RuntimeError("this task is broken on purpose")
''')

MODULES = {
    "broken_syntax": "import pylaw\n\nclass Oops(pylaw.Task:\n    pass\n",
    "raises_on_import": "import pylaw\n\nVALUE = 1 / 0\n",
    "needs_missing_dep": "import pylaw\nimport nonexistent_dependency_xyz\n",
}


@dataclass
class Case:
    args: list[str]
    code: int
    words: list[str]
    luigi: bool = True        # also through `luigi --module mytasks ...`
    luigi_code: int | None = None  # the exit code there, if it differs (Luigi's [retcode] mapping)
    luigi_words: list[str] | None = None
    luigi_traceback: bool = False  # Luigi raises it outside its own error handling
    config: str | None = None  # replaces luigi.cfg
    env: dict[str, str] = field(default_factory=dict)
    command: str = "pyl"
    quick: float | None = None  # seconds the answer may take at most


V = ["--version", "v1"]

CASES: dict[str, Case] = {
    # parameter values
    "int-not-a-number": Case(["Typed", *V, "--n", "abc"], 2, ["--n", "'abc'", "integer"], luigi_words=["abc"]),
    "int-a-float": Case(["Typed", *V, "--n", "1.5"], 2, ["--n", "'1.5'", "integer"], luigi_words=["1.5"]),
    "int-equals-form": Case(["Typed", *V, "--n=abc"], 2, ["--n", "'abc'"], luigi_words=["abc"]),
    "int-global-form": Case(["Typed", *V, "--Typed-n", "x1"], 2, ["--Typed-n", "'x1'"], luigi_words=["x1"]),
    "choice": Case(["Typed", *V, "--mode", "medium"], 2, ["--mode", "'medium'", "fast, slow"],
                   luigi_words=["medium"]),
    "bool-with-value": Case(["Typed", *V, "--flag", "maybe"], 2, ["'maybe'", "--flag", "switch"],
                            luigi_words=["maybe"]),
    "bool-equals-value": Case(["Typed", *V, "--flag=yes"], 2, ["--flag", "switch"], luigi_words=["--flag"]),
    "float-not-a-number": Case(["Typed", *V, "--ratio", "big"], 2, ["--ratio", "'big'", "number"],
                               luigi_words=["big"]),
    "float-nan": Case(["Typed", *V, "--ratio", "nan"], 2, ["--ratio", "nan"], luigi=False),
    "duration-inf": Case(["Typed", *V, "--timeout", "inf"], 2, ["--timeout", "finite"]),
    "duration-nan": Case(["Typed", *V, "--timeout", "nan"], 2, ["--timeout", "finite"]),
    "duration-negative": Case(["Typed", *V, "--timeout=-5"], 2, ["--timeout", "negative"]),
    "duration-garbage": Case(["Typed", *V, "--timeout", "1h30x"], 2, ["--timeout", "1h30m"]),
    "bytes-unit": Case(["Typed", *V, "--size", "2XB"], 2, ["--size", "'2XB'", "512MiB"]),
    "bytes-negative": Case(["Typed", *V, "--size=-1"], 2, ["--size", "'-1'"]),
    "missing-version": Case(["Typed"], 2, ["Typed", "--version"], luigi_words=["version"]),
    "missing-value": Case(["Typed", *V, "--n"], 2, ["--n", "needs a value"], luigi_words=["--n"]),
    "given-twice": Case(["Typed", *V, "--n", "1", "--n", "2"], 2, ["--n", "twice"], luigi=False),
    "stray-argument": Case(["Typed", *V, "surplus"], 2, ["'surplus'", "unexpected"], luigi_words=["surplus"]),
    # misspellings
    "misspelled-parameter": Case(["Typed", *V, "--nn", "3"], 2, ["--nn", "did you mean --n"],
                                 luigi_words=["--nn"]),
    "misspelled-version": Case(["Typed", "--versoin", "v1"], 2, ["--versoin", "--version"],
                               luigi_words=["--versoin"]),
    "misspelled-task": Case(["Produc", *V], 2, ["Produc", "Produce"], luigi_code=1,  # raised before [retcode]
                            luigi_traceback=True),
    "no-task": Case([*V], 2, ["no task"], luigi=False),
    # framework options
    "print-status-not-a-depth": Case(["Produce", *V, "--print-status", "abc"], 2, ["--print-status", "'abc'"],
                                     luigi_words=["--print-status", "'abc'"]),
    "workers-not-a-number": Case(["Produce", *V, "--workers", "abc"], 2, ["--workers", "'abc'"],
                                 luigi_words=["--workers"]),
    "workers-zero": Case(["Produce", *V, "--local", "--workers", "0"], 2, ["--workers", "at least 1"]),
    "workers-negative": Case(["Produce", *V, "--workers=-3"], 2, ["--workers", "at least 1"]),
    "workers-float": Case(["Produce", *V, "--workers", "1e3"], 2, ["--workers", "'1e3'"],
                          luigi_words=["--workers"]),
    "log-level": Case(["Produce", *V, "--log-level", "LOUD"], 2, ["--log-level", "'LOUD'", "DEBUG"],
                      luigi_words=["LOUD"]),
    "scheduler-port-not-a-number": Case(["Produce", *V, "--scheduler-port", "http"], 2,
                                        ["--scheduler-port", "'http'"], luigi_words=["--scheduler-port", "'http'"]),
    "scheduler-unreachable": Case(["Produce", *V, "--scheduler-host=127.0.0.1", "--scheduler-port=9"], 2,
                                  ["luigid", "127.0.0.1:9"], luigi=False, quick=15),
    "two-schedulers": Case(["Produce", *V, "--central-scheduler", "--local-scheduler"], 2,
                           ["--central-scheduler", "--local-scheduler"], luigi=False),
    "local-scheduler-and-host": Case(["Produce", *V, "--local-scheduler", "--scheduler-host", "127.0.0.1"], 2,
                                     ["--local-scheduler", "--scheduler-host"], luigi=False),
    # branches and workflows
    "branches-open-beyond-the-map": Case(["Produce", *V, "--branches", "10-"], 2, ["10-", "0-4"]),
    "branches-huge": Case(["Produce", *V, "--branches", "0-1000000000"], 2, ["5-1000000000", "0-4"], quick=15),
    "branches-backwards": Case(["Produce", *V, "--branches", "5-3"], 2, ["--branches", "ends before"]),
    "branches-garbage": Case(["Produce", *V, "--branches", "a-b"], 2, ["--branches", "'a-b'"]),
    "branches-double-dash": Case(["Produce", *V, "--branches", "1--3"], 2, ["--branches", "1--3"]),
    "branch-below-minus-one": Case(["Produce", *V, "--branch", "-5"], 2, ["--branch -5", "-1"]),
    "branch-beyond-the-map": Case(["Produce", *V, "--branch", "99"], 2, ["branch 99", "0-4"]),
    "branch-not-a-number": Case(["Produce", *V, "--branch", "first"], 2, ["--branch", "'first'"],
                                luigi_words=["first"]),
    "workflow-unknown": Case(["Produce", *V, "--workflow", "bogus"], 2, ["bogus", "local"]),
    "local-and-other-workflow": Case(["Produce", *V, "--local", "--workflow", "bogus"], 2,
                                     ["--local", "--workflow bogus"], luigi=False),
    # modules
    "module-missing": Case(["--module", "no_such_module_xyz", "Produce", *V], 2, ["no_such_module_xyz"],
                           luigi=False),
    "module-syntax-error": Case(["--module", "broken_syntax", "Oops", *V], 2,
                                ["syntax error", "broken_syntax.py:3"], luigi=False),
    "module-raises-on-import": Case(["--module", "raises_on_import", "X", *V], 2,
                                    ["raises_on_import.py:3", "ZeroDivisionError"], luigi=False),
    "module-missing-dependency": Case(["--module", "needs_missing_dep", "X", *V], 2,
                                      ["needs_missing_dep", "nonexistent_dependency_xyz"], luigi=False),
    # configuration
    "config-no-section-header": Case(["Produce", *V], 2, ["malformed configuration", "case.cfg"], luigi=False,
                                     config="modules = mytasks\n"),
    "config-broken-header": Case(["Produce", *V], 2, ["malformed configuration", "[pylaw"], luigi=False,
                                 config="[pylaw\nmodules = mytasks\n"),
    "config-duplicate-section": Case(["Produce", *V], 2, ["section 'pylaw' already exists"], luigi=False,
                                     config="[pylaw]\nmodules = mytasks\n[pylaw]\nstore = x\n"),
    "config-unset-variable": Case(["Produce", *V], 2, ["NOPE_UNSET_VARIABLE", "store"], luigi=False,
                                  config="[pylaw]\nmodules = mytasks\nstore = ${NOPE_UNSET_VARIABLE}/x\n"),
    "config-bad-bool": Case(["Produce", *V], 2, ["[pylaw]", "central_scheduler"], luigi=False,
                            config="[pylaw]\nmodules = mytasks\ncentral_scheduler = maybe\n"),
    "config-misspelled-section": Case(["Produce", *V, "--print-status", "0"], 0, ["[Produc]", "[Produce]"],
                                      luigi=False, config="[pylaw]\nmodules = mytasks\n[Produc]\nn = 3\n"),
    # the task index
    "index-is-a-directory": Case(["Produce", *V], 2, ["task index", "index_file"], luigi=False,
                                 env={"PYLAW_INDEX": "{tmp}"}),
    "index-unwritable": Case(["Produce", *V], 2, ["cannot write the task index"], luigi=False,
                             env={"PYLAW_INDEX": "{tmp}/file/index.json"}),
    "index-corrupt": Case(["Produce", *V], 2, ["corrupt", "pylaw index"], luigi=False,
                          env={"PYLAW_INDEX": "{tmp}/corrupt.json"}),
    "index-stale": Case(["Produce", *V, "--print-status", "0"], 0, ["Produce", "complete"], luigi=False,
                        env={"PYLAW_INDEX": "{tmp}/stale.json"}),
    # other sub-commands
    "shifts-unknown-module": Case(["shifts", "no_such_module_xyz", "Plot"], 2, ["no_such_module_xyz"],
                                  luigi=False, command="pylaw"),
    "shifts-unknown-task": Case(["shifts", "mytasks", "Plott"], 2, ["mytasks", "Plott"], luigi=False,
                                command="pylaw"),
    "status-unknown-module": Case(["status", "no_such_module_xyz", "Combine", *V], 2, ["no_such_module_xyz"],
                                  luigi=False, command="pylaw"),
    "status-unknown-task": Case(["status", "mytasks", "Combin", *V], 2, ["'Combin'", "Combine"], luigi=False,
                                command="pylaw"),
    "status-misspelled-parameter": Case(["status", "mytasks", "Typed", *V, "--nn", "3"], 2,
                                        ["--nn", "did you mean --n"], luigi=False, command="pylaw"),
    "status-misspelled-own-option": Case(["status", "mytasks", "Combine", *V, "--jsn"], 2,
                                         ["--jsn", "own option --json"], luigi=False, command="pylaw"),
    "status-bad-value": Case(["status", "mytasks", "Typed", *V, "--n", "abc"], 2, ["--n", "'abc'", "integer"],
                             luigi=False, command="pylaw"),
    "status-missing-version": Case(["status", "mytasks", "Typed"], 2, ["Typed", "--version"], luigi=False,
                                   command="pylaw"),
    "status-bad-depth": Case(["status", "mytasks", "Combine", *V, "--depth", "-2"], 2, ["--depth -2"], luigi=False,
                             command="pylaw"),
    "status-branches-beyond-the-map": Case(["status", "mytasks", "Produce", *V, "--branches", "10-"], 2,
                                           ["10-", "0-4"], luigi=False, command="pylaw"),
    "graph-unknown-format": Case(["graph", "mytasks", "Combine", *V, "--output", "g.pdf"], 2, ["g.pdf", ".svg"],
                                 luigi=False, command="pylaw"),
    "graph-without-graphviz": Case(["graph", "mytasks", "Combine", *V, "--output", "g.svg"], 2,
                                   ["Graphviz", "apt-get install graphviz"], luigi=False, command="pylaw",
                                   env={"PATH": "{tmp}/no-such-bin"}),
    "graph-no-such-directory": Case(["graph", "mytasks", "Combine", *V, "--output", "nodir/g.svg"], 2,
                                    ["nodir", "does not exist"], luigi=False, command="pylaw"),
    "init-without-module": Case(["init"], 2, ["--module"], luigi=False, command="pylaw"),
    "init-over-existing": Case(["init", "--module", "mytasks", "luigi.cfg"], 2, ["exists already", "--force"],
                               luigi=False, command="pylaw"),
    "unknown-subcommand": Case(["runn"], 2, ["runn"], luigi=False, command="pylaw"),
    # runs that fail
    "task-without-output": Case(["NoOutput", *V], 1, ["NoOutput", "never.json"], luigi_words=["never.json"]),
    "task-failing": Case(["Fails", *V], 1, ["broken on purpose"], luigi_words=["broken on purpose"]),
}


def exe(name: str) -> str:
    return os.path.join(os.path.dirname(PYTHON), name)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_input")
    (root / "mytasks.py").write_text(TASKS)
    for name, text in MODULES.items():
        (root / f"{name}.py").write_text(text)
    write_config(str(root), "mytasks", str(root / "store"))  # what `pylaw init` writes, logging.ini too
    (root / "corrupt.json").write_text("{not json")
    (root / "stale.json").write_text('{"modules": ["gone"], "tasks": {"Produce": "module_that_was_removed"}}')
    (root / "file").write_text("a file, not a directory")
    env = cli_env(root)
    done = subprocess.run([exe("pyl"), "Combine", *V, "--local"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return root


def snapshot(store) -> dict[str, str]:
    """Every file under the store with a digest of its bytes (and every directory)."""
    found = {}
    for directory, dirs, files in os.walk(store):
        for name in dirs:
            found[os.path.join(directory, name)] = "dir"
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                found[path] = hashlib.sha256(f.read()).hexdigest()
    return found


def run_case(project, case: Case, via_luigi: bool) -> tuple[subprocess.CompletedProcess, float]:
    cfg = project / "luigi.cfg"
    if case.config is not None:
        cfg = project / "case.cfg"
        cfg.write_text(case.config)
    env = cli_env(project, LUIGI_CONFIG_PATH=str(cfg))
    env.update({k: v.format(tmp=project) for k, v in case.env.items()})
    if via_luigi:
        argv = [exe("luigi"), "--module", "mytasks", *case.args, "--local-scheduler"]
    else:
        argv = [exe(case.command), *case.args]
    started = time.perf_counter()
    result = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    return result, time.perf_counter() - started


@pytest.mark.parametrize("name", list(CASES))
def test_pyl(project, name):
    case = CASES[name]
    before = snapshot(project / "store")
    result, seconds = run_case(project, case, via_luigi=False)
    output = result.stdout + result.stderr
    assert result.returncode == case.code, output
    for word in case.words:
        assert word in output, f"{word!r} not in:\n{output}"
    if case.code == 2:
        assert "Traceback" not in output, output
        assert len(result.stderr.strip().splitlines()) <= 3, "a one-line (or short) message, not a dump"
    if case.quick is not None:
        assert seconds < case.quick, f"took {seconds:.1f} s"
    assert snapshot(project / "store") == before


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.luigi])
def test_luigi_module(project, name):
    case = CASES[name]
    before = snapshot(project / "store")
    result, seconds = run_case(project, case, via_luigi=True)
    output = result.stdout + result.stderr
    expected = case.luigi_code if case.luigi_code is not None else case.code
    assert result.returncode == expected, output
    for word in case.luigi_words if case.luigi_words is not None else case.words:
        assert word in output, f"{word!r} not in:\n{output}"
    if expected == 2 and not case.luigi_traceback:
        assert "Traceback" not in output, output
    if case.quick is not None:
        assert seconds < case.quick, f"took {seconds:.1f} s"
    assert snapshot(project / "store") == before


def test_there_are_at_least_sixty_cases():
    assert len(CASES) >= 60


@pytest.mark.parametrize("via_luigi", [False, True], ids=["pyl", "luigi"])
def test_corrupt_input_is_named_and_nothing_downstream_is_written(tmp_path, via_luigi):
    (tmp_path / "mytasks.py").write_text(TASKS)
    write_config(str(tmp_path), "mytasks", str(tmp_path / "store"))
    env = cli_env(tmp_path, LUIGI_CONFIG_PATH=str(tmp_path / "luigi.cfg"))
    made = subprocess.run([exe("pyl"), "Produce", *V, "--local"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    corrupt = tmp_path / "store" / "Produce" / "v1" / "n=5" / "p_2.json"
    corrupt.write_text('{"branch": ')  # truncated, as by a full disk outside pylaw
    argv = ([exe("luigi"), "--module", "mytasks", "Combine", *V, "--local-scheduler"] if via_luigi
            else [exe("pyl"), "Combine", *V])
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert f"cannot read {corrupt} as json" in result.stderr
    assert not (tmp_path / "store" / "Combine").exists()
