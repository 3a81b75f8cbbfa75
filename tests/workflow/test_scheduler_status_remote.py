"""A remote workflow on the real single-node Slurm, coordinated by a real luigid: its job
counts per state reach luigid's task list as the workflow's status message and progress."""

from __future__ import annotations

import re
import subprocess
import sys
import time

from tests.services.luigid import luigid  # noqa: F401 - fixture
from tests.services.slurm import slurm_cluster  # noqa: F401 - fixture
from tests.workflow.test_slurm_e2e import run_env  # noqa: F401 - fixture

JOBS = re.compile(r"slurm: 4 branches: (\d) done, 0 failed \| jobs: (\d) queued, (\d) pending, (\d) running, "
                  r"(\d) done, 0 retried, 0 given up")


def test_job_counts_reach_luigids_task_list(tmp_path, run_env, luigid):  # noqa: F811
    argv = [sys.executable, "-m", "luigi", "--module", "tests.workflow.slurm_tasks", "Square", "--version", "v1",
            "--workflow", "slurm", "--n", "4", "--tasks-per-job", "2", "--sleep", "1.5", "--poll-interval", "1",
            "--marker-dir", str(tmp_path / "markers"), *luigid.cli_args()]
    process = subprocess.Popen(argv, env=run_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: list[tuple[str, int]] = []
    while process.poll() is None:
        for task in luigid.api("task_list", status="RUNNING", upstream_status="", search="Square").values():
            if task["params"].get("branch") == "-1" and task["status_message"]:
                seen.append((task["status_message"], task["progress_percentage"]))
        time.sleep(0.3)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert seen, "no status message from the remote workflow in luigid"
    for message, percent in seen:
        match = JOBS.fullmatch(message)
        assert match, message
        assert sum(int(n) for n in match.groups()[1:]) == 2, f"two jobs of two branches each: {message}"
        assert percent == 25 * int(match[1])
    assert any(int(JOBS.fullmatch(m)[4]) for m, _ in seen), f"never saw a running job: {seen}"
    final = luigid.api("task_search", task_str="Square")["DONE"]
    (workflow,) = [t for t in final.values() if t["params"].get("branch") == "-1"]
    assert workflow["status_message"].startswith("slurm: 4 branches: 4 done, 0 failed | jobs:")
    assert workflow["progress_percentage"] == 100
    # jobs run their branches with a local scheduler: no branch claim of theirs reaches luigid
    assert not [t for t in final.values() if t["name"] == "Square__claims"]
