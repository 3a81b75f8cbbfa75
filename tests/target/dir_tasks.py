"""Directory writers that tests/target/test_directory.py runs in subprocesses and kills.

``KILL_AT=<point>`` makes a writer SIGKILL itself at that point of its work (between
files); :func:`kill_on_call` kills it when a given function is entered or has returned
(inside pylaw's publishing steps). Every file a writer puts in a directory holds the same
``tag``, so a reader can tell one complete version from a mixture.
"""

from __future__ import annotations

import os
import signal
import sys
import time

import luigi

import pylaw

FILES = ("f0.txt", "f1.txt", "f2.txt", "f3.txt")


def kill_point(point: str) -> None:
    """Between two steps of a writer: die here if asked to, or pause (``PAUSE`` seconds)."""
    if os.environ.get("KILL_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(float(os.environ.get("PAUSE", 0)))


def kill_on_call(name: str, when: str = "call", nth: int = 1) -> None:
    """SIGKILL this process at the ``nth`` call (``when="call"``) or return (``"return"``) of ``name``.

    ``name`` is a C function (``rename``) or a Python function (``remove_tree``).
    """
    seen = 0

    def profile(frame, event, arg):
        nonlocal seen
        if event in ("c_call", "c_return"):
            hit = event == "c_" + when and getattr(arg, "__name__", None) == name
        else:
            hit = event == when and frame.f_code.co_name == name
        if hit:
            seen += 1
            if seen == nth:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.setprofile(profile)


def write_version(path: str, tag: str, size: int = 10) -> None:
    """The four files of one version, each ``tag`` repeated (bigger ``size``: slower writes)."""
    for index, name in enumerate(FILES):
        with open(os.path.join(path, name), "w") as f:
            f.write(tag * size)
        kill_point(f"file{index}")


def read_version(path: str) -> dict[str, str] | None:
    """``{name: content}`` of one published version of ``path``; None if it was swapped meanwhile.

    The directory is opened once and read through that handle, and the sample counts only if
    the path still names the same directory afterwards: an old version being deleted after a
    replacement is not what the path showed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        contents = {}
        for name in os.listdir(fd):
            with os.fdopen(os.open(name, os.O_RDONLY, dir_fd=fd)) as f:
                contents[name] = f.read()
        st, own = os.stat(path), os.fstat(fd)
        return contents if (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino) else None
    except FileNotFoundError:
        return None
    finally:
        os.close(fd)


class DirWriter(pylaw.Task):
    """One directory output, written ``how``: ``makedirs`` / ``child`` (in place) or ``localize``."""

    how = luigi.Parameter(default="makedirs")
    tag = luigi.Parameter(default="x")

    def output(self):
        return self.local_target("out", dir=True)

    def run(self):
        out = self.output()
        if self.how == "localize":
            with out.localize("w") as tmp:
                write_version(tmp.path, self.tag)
            return
        if self.how == "makedirs":
            os.makedirs(out.path, exist_ok=bool(os.environ.get("EXIST_OK")))
        # a file of this run only: a rerun must not find the killed run's one
        out.child(f"run-{os.getpid()}.pid").dump("", formatter="text")
        if os.environ.get("BLOCK_UNTIL"):  # stay in run() until the test lets go
            while not os.path.exists(os.environ["BLOCK_UNTIL"]):
                time.sleep(0.02)
        if self.how == "child":
            for index, name in enumerate(FILES):
                out.child(name).dump(self.tag * 10, formatter="text")
                kill_point(f"file{index}")
        else:
            write_version(out.path, self.tag)
        if os.environ.get("FAIL"):
            raise RuntimeError("the payload failed after writing its files")


class DirBranches(pylaw.Task, pylaw.LocalWorkflow):
    """Four branches, each writing a directory ``d_<branch>`` in place; runs are logged."""

    def create_branch_map(self):
        return dict(enumerate("abcd"))

    def output(self):
        return self.local_target(f"d_{self.branch}", dir=True)

    def run(self):
        out = self.output()
        os.makedirs(out.path)
        with open(os.path.join(os.environ["PYLAW_STORE"], "runs.log"), "a") as log:
            log.write(f"{self.branch}\n")
        for index, name in enumerate(FILES):
            out.child(name).dump(self.branch_data * 10, formatter="text")
            kill_point(f"branch{self.branch}-file{index}")


class NestedDirs(pylaw.Task):
    """A directory output and a second one inside it."""

    def output(self):
        return {"outer": self.local_target("outer", dir=True), "inner": self.local_target("outer/inner", dir=True)}

    def run(self):
        os.makedirs(self.output()["outer"].path)  # no exist_ok: the guard must not have created it
        os.makedirs(self.output()["inner"].path)
        write_version(self.output()["inner"].path, "n")


def build(*tasks: luigi.Task) -> bool:
    return luigi.build(list(tasks), local_scheduler=True, log_level="WARNING")
