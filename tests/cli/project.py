"""A small project driven through the real ``pyl`` in subprocesses, and /proc helpers to watch its processes."""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path

from tests.conftest import PYTHON, cli_env

TASKS = textwrap.dedent('''
    import os
    import time

    import luigi
    import pylaw


    class Work(pylaw.Task, pylaw.LocalWorkflow):
        """Each branch logs "pid branch" when it starts, then writes its output slowly."""

        n = luigi.IntParameter(default=8)
        sleep = luigi.FloatParameter(default=0.3)
        fail = luigi.Parameter(default="")

        def create_branch_map(self):
            return list(range(self.n))

        def output(self):
            return self.local_target(f"w_{self.branch}.txt")

        def run(self):
            with open(os.environ["RUNS_LOG"], "a") as log:
                log.write(f"{os.getpid()} {self.branch}\\n")
            if str(self.branch) in self.fail.split(","):
                raise RuntimeError(f"branch {self.branch} fails")
            with self.output().open("w") as f:
                f.write("started\\n")
                f.flush()
                time.sleep(self.sleep)
                f.write(f"complete {self.branch}\\n")


    class Total(pylaw.Task):
        n = luigi.IntParameter(default=8)
        fail = luigi.Parameter(default="")

        def requires(self):
            return self.req(Work, sleep=0.0)

        def output(self):
            return self.local_target("total.txt")

        def run(self):
            self.output().dump(len(self.input()))
''')

PYL = os.path.join(os.path.dirname(PYTHON), "pyl")


def make_project(tmp_path: Path, pylaw: str = "", cfg: str = "") -> Path:
    """The tasks, and a luigi.cfg with ``pylaw`` added to its [pylaw] section and ``cfg`` at its end."""
    (tmp_path / "worktasks.py").write_text(TASKS)
    (tmp_path / "luigi.cfg").write_text(f"[pylaw]\nmodules = worktasks\n{pylaw}\n[core]\nlog_level = WARNING\n{cfg}")
    return tmp_path


def env(project: Path) -> dict[str, str]:
    return cli_env(project, RUNS_LOG=str(project / "runs.log"))


class Run:
    """A ``pyl`` process whose output goes to files: an orphan holding a pipe would make
    ``communicate()`` wait for it, and hide that ``pyl`` itself had exited long before."""

    def __init__(self, project: Path, argv: list[str], name: str, **popen) -> None:
        self.out, self.err = project / f"{name}.out", project / f"{name}.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            popen.setdefault("stderr", err)
            self.process = subprocess.Popen(argv, cwd=project, env=env(project), stdout=out, text=True,
                                            start_new_session=True, **popen)
        self.pid = self.process.pid

    def wait(self, timeout: float = 60) -> tuple[int, str]:
        """Exit code and standard error, as soon as ``pyl`` itself has exited."""
        code = self.process.wait(timeout)
        return code, self.err.read_text()


def start(project: Path, *args: str, command: str = PYL, name: str = "pyl", **popen) -> Run:
    """``pyl Work --version v1 ARGS`` in its own session (its own process group)."""
    argv = [command, *(["--module", "worktasks"] if command != PYL else []), "Work", "--version", "v1",
            "--lock-pid-dir", str(project / "pids"), *args]
    return Run(project, argv, name, **popen)


def runs(project: Path) -> list[tuple[int, int]]:
    """(pid, branch) of every branch run started so far."""
    path = project / "runs.log"
    if not path.exists():
        return []
    return [(int(p), int(b)) for p, b in (line.split() for line in path.read_text().splitlines())]


def wait_for_runs(project: Path, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while len(runs(project)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} branch runs after {timeout} s: {runs(project)}")
        time.sleep(0.02)


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``, scanning /proc (works for any thread's children)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


def descendants_of(pid: int) -> list[int]:
    found, pending = [], children_of(pid)
    while pending:
        child = pending.pop()
        found.append(child)
        pending.extend(children_of(child))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` still exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def outputs(project: Path) -> dict[str, tuple[int, int, str]]:
    """Every file below the store's Work directory: (size, mtime_ns, content)."""
    found = {}
    root = project / "store" / "Work"
    for path in root.rglob("*") if root.exists() else ():
        if path.is_file():
            st = path.stat()
            found[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, path.read_text())
    return found


def final_outputs(project: Path) -> dict[str, str]:
    """The outputs a reader would take for complete (``w_N.txt``), with their content."""
    return {name: content for name, (_, _, content) in outputs(project).items()
            if os.path.basename(name).startswith("w_")}
