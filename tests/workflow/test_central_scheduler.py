"""A local workflow run against a real luigid: status, progress and the global task lock."""

import os
import subprocess
import textwrap
import time

from tests.conftest import PYTHON, cli_env
from tests.services.luigid import luigid  # noqa: F401 - fixture

TASKS = textwrap.dedent('''
    import os
    import time

    import luigi
    import pylaw


    class Slow(pylaw.Task, pylaw.LocalWorkflow):
        n = luigi.IntParameter(default=6)
        fail = luigi.IntParameter(default=-1)

        def create_branch_map(self):
            return list(range(self.n))

        def output(self):
            return self.local_target(f"s_{self.branch}.txt")

        def run(self):
            if self.branch == self.fail:
                raise RuntimeError("this branch fails")
            time.sleep(0.2)
            with open("runs.log", "a") as log:
                log.write(f"{os.getpid()} {self.branch}\\n")
            self.output().dump("done")
''')


def run_pyl(tmp_path, server, *args):
    (tmp_path / "slowtasks.py").write_text(TASKS)
    exe = os.path.join(os.path.dirname(PYTHON), "pyl")
    return subprocess.Popen([exe, "Slow", "--module", "slowtasks", "--version", "v1", *args, *server.cli_args()],
                            cwd=tmp_path, env=cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_workflow_reports_status_and_progress_to_luigid(tmp_path, luigid):  # noqa: F811
    process = run_pyl(tmp_path, luigid, "--fail", "4")
    _, err = process.communicate(timeout=120)
    assert process.returncode == 1, err
    tasks = luigid.api("task_list", status="FAILED", upstream_status="", search="")
    tasks = {k: t for k, t in tasks.items() if t["name"] == "Slow"}  # not the claim tasks (Slow__claims)
    ((workflow_id, task),) = [(k, t) for k, t in tasks.items() if t["params"]["branch"] == "-1"]
    assert task["status_message"] == "branches: 5/6 done, 1 failed, 0 running, 0 pending"
    assert task["progress_percentage"] == 100
    assert "1 of 6 branches of Slow failed: 4" in luigid.api("fetch_error", task_id=workflow_id)["error"]
    # the branches were claimed in luigid under their own task ids: the failed one is FAILED there
    ((branch_id, branch),) = [(k, t) for k, t in tasks.items() if t["params"]["branch"] != "-1"]
    assert branch["params"]["branch"] == "4" and branch["worker_running"].startswith("pylaw-branches:")
    assert "this branch fails" in luigid.api("fetch_error", task_id=branch_id)["error"]
    done = luigid.api("task_list", status="DONE", upstream_status="", search="Slow")
    assert sorted(int(t["params"]["branch"]) for t in done.values() if t["name"] == "Slow") == [0, 1, 2, 3, 5]
    claims = [t for t in done.values() if t["name"] == "Slow__claims"]
    assert claims and all(t["params"]["workflow"] == workflow_id for t in claims), "batched claims, released"


def test_same_workflow_never_runs_twice_at_once(tmp_path, luigid):  # noqa: F811
    # --no-lock: no machine-local pid lock, as if the two ran on different machines
    first = run_pyl(tmp_path, luigid, "--n", "10", "--no-lock")
    time.sleep(1.0)  # the first one holds the workflow in luigid by now (its branches take 2 s)
    second = run_pyl(tmp_path, luigid, "--n", "10", "--no-lock")
    outputs = [p.communicate(timeout=120) for p in (first, second)]
    assert first.returncode == 0, outputs
    runs = (tmp_path / "runs.log").read_text().split()
    pids, branches = set(runs[0::2]), sorted(int(b) for b in runs[1::2])
    assert branches == list(range(10)), "every branch ran exactly once"
    assert len(pids) == 1, "both processes ran branches: luigid's lock did not hold"
    assert len(os.listdir(tmp_path / "store" / "Slow" / "v1" / "n=10" / "fail=-1")) == 10
    assert second.returncode == 3, outputs[1]  # held by the first one's worker, and told so
    assert "run by another worker" in outputs[1][1], outputs[1]


def test_equals_form_of_scheduler_options_reaches_luigid(tmp_path, luigid):  # noqa: F811
    (tmp_path / "slowtasks.py").write_text(TASKS)
    exe = os.path.join(os.path.dirname(PYTHON), "pyl")
    result = subprocess.run([exe, "Slow", "--module", "slowtasks", "--version", "v1", "--n", "2",
                             "--scheduler-host=127.0.0.1", f"--scheduler-port={luigid.port}"],
                            cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    done = luigid.api("task_list", status="DONE", upstream_status="", search="")
    assert sorted(t["params"]["branch"] for t in done.values() if t["name"] == "Slow") == ["-1", "0", "1"], \
        "the run (the workflow and its branch claims) was not coordinated by luigid"
