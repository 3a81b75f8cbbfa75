"""Progress lines and the summary of a run, through the real ``pyl`` (and ``luigi --module``)."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
from pathlib import Path

from tests.cli.project import PYL, env, make_project, start

LINE = re.compile(r"^\[pylaw\] Work\[\w+\]: (\d+)/8 done, [\d.]+/s", re.M)
LUIGI = os.path.join(os.path.dirname(PYL), "luigi")


def test_plain_progress_lines_without_a_terminal(tmp_path):
    project = make_project(tmp_path, "progress_interval = 0.3")
    code, err = start(project, "--n", "8", "--workers", "1").wait()
    assert code == 0, err
    done = [int(n) for n in LINE.findall(err)]
    assert len(done) >= 3 and done == sorted(done) and done[-1] < 8, err
    assert "ETA" in err
    assert "pylaw summary:" in err and "8 to run, 8 done here" in err, err


def test_progress_through_luigi_module(tmp_path):
    project = make_project(tmp_path, "progress_interval = 0.3")
    code, err = start(project, "--n", "8", "--workers", "2", "--local-scheduler", command=LUIGI).wait()
    assert code == 0, err
    assert len(LINE.findall(err)) >= 2, err


def test_quiet_through_both_command_lines(tmp_path):
    project = make_project(tmp_path, "progress_interval = 0.2")
    code, err = start(project, "--n", "8", "--quiet").wait()
    assert code == 0, err
    assert not LINE.search(err) and "pylaw summary" not in err, err
    code, err = start(project, "--n", "8", "--version", "v2", "--quiet", "--local-scheduler", command=LUIGI).wait()
    assert code == 0, err
    assert not LINE.search(err), err
    assert len(list((project / "store" / "Work" / "v2").rglob("w_*.txt"))) == 8


def test_summary_of_a_failing_run_shows_each_traceback_once(tmp_path):
    project = make_project(tmp_path)
    argv = [PYL, "Total", "--version", "v1", "--fail", "3,4,5,7", "--workers", "2"]
    result = subprocess.run(argv, cwd=project, env=env(project), capture_output=True, text=True, timeout=60)
    err = result.stderr
    assert result.returncode == 1, err
    assert err.count('raise RuntimeError(f"branch {self.branch} fails")') == 4, err
    assert "8 to run, 4 done here, 4 failed: 3-5,7" in err, err
    assert re.search(r"pending: Total\(.*\) \(a requirement failed\)", err), err
    log = re.search(r"branch tracebacks: (\S+)\)", err).group(1)
    assert Path(log).read_text().count("RuntimeError: branch") == 4
    assert "logs:    standard error" in err


def test_live_lines_on_a_terminal(tmp_path):
    project = make_project(tmp_path)
    master, slave = pty.openpty()
    run = start(project, "--n", "12", "--sleep", "0.2", "--fail", "5", "--workers", "1", stderr=slave)
    os.close(slave)
    screen = b""
    while True:
        ready = select.select([master], [], [], 30)[0]
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:  # the terminal closed: pyl is gone
            chunk = b""
        if not chunk:
            break
        screen += chunk
    os.close(master)
    code, _ = run.wait()
    text = screen.decode(errors="replace")
    assert code == 1, text
    # redrawn in place, with a coloured bar
    assert re.search(r"\x1b\[1A\r\x1b\[JWork\[\w+\] (?:\x1b\[[\d;]*m|[█▓░])+ \d+/12 done, 1 failed", text), text
    assert re.search(r"\x1b\[1A\r\x1b\[J\S*branch 5 of Work", text), "the log record did not replace the line: " + text
    assert "pylaw summary:" in text
