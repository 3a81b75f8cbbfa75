"""Branch claims in a real luigid: no branch of a local workflow runs twice at once, whatever
runs ask for it (overlapping selections, the same workflow, a branch run directly), and the
claims of a run killed with -9 expire. Every assertion is made from per-run records (pid,
start and end time of each branch run) and from luigid's own task list."""

from __future__ import annotations

import collections
import itertools
import os
import re
import signal
import sqlite3
import textwrap
import time
from pathlib import Path

from tests.cli.project import PYL, Run
from tests.services.luigid import (  # noqa: F401 - fixtures
    Luigid,
    luigid,
    luigid_short_leases,
    luigid_with_history,
    start_luigid,
)

TASKS = textwrap.dedent('''
    import os
    import time

    import luigi
    import pylaw


    def note(what, branch):
        # one short O_APPEND write per line: lines of concurrent processes never mix
        fd = os.open(os.environ["RUNS_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"{what} {os.getpid()} {branch} {time.time():.6f}\\n".encode())
        os.close(fd)


    class Claimed(pylaw.Task, pylaw.LocalWorkflow):
        n = luigi.IntParameter(default=9)
        sleep = luigi.FloatParameter(default=0.4)
        slow = luigi.IntParameter(default=-1, significant=False)  # this branch sleeps 8 times as long
        fail = luigi.IntParameter(default=-1, significant=False)  # this branch fails

        def create_branch_map(self):
            return list(range(self.n))

        def output(self):
            return self.local_target(f"c_{self.branch}.txt")

        def run(self):
            note("start", self.branch)
            time.sleep(self.sleep * (8 if self.branch == self.slow else 1))
            if self.branch == self.fail:
                raise RuntimeError(f"branch {self.branch} fails")
            self.output().dump(f"made by {os.getpid()}")
            note("end", self.branch)
''')

Record = collections.namedtuple("Record", "pid branch start end")


def project(tmp_path: Path) -> Path:
    (tmp_path / "claimtasks.py").write_text(TASKS)
    (tmp_path / "luigi.cfg").write_text("[pylaw]\nmodules = claimtasks\n[core]\nlog_level = WARNING\n")
    return tmp_path


def start(tmp_path: Path, server: Luigid, *args: str, name: str) -> Run:
    # --no-lock: no machine-local pid lock either, as if every run were on a machine of its own
    argv = [PYL, "Claimed", "--version", "v1", "--no-lock", *args, *server.cli_args()]
    return Run(tmp_path, argv, name)


def records(tmp_path: Path) -> list[Record]:
    """Every branch run: its pid, branch, start and end time (end None: it never ended)."""
    path = tmp_path / "runs.log"
    opened: dict[tuple[int, int], float] = {}
    done: list[Record] = []
    for line in path.read_text().splitlines() if path.exists() else ():
        what, pid, branch, stamp = line.split()
        key = (int(pid), int(branch))
        if what == "start":
            opened[key] = float(stamp)
        else:
            done.append(Record(key[0], key[1], opened.pop(key), float(stamp)))
    return done + [Record(pid, branch, begun, None) for (pid, branch), begun in opened.items()]


def assert_no_overlap(runs: list[Record]) -> None:
    """No two runs of one branch were ever under way at the same time."""
    by_branch = collections.defaultdict(list)
    for run in runs:
        by_branch[run.branch].append(run)
    for branch, each in by_branch.items():
        each.sort(key=lambda r: r.start)
        for first, second in itertools.pairwise(each):
            assert first.end is not None and first.end <= second.start, f"branch {branch} ran twice at once: {each}"


def wait_until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)


def luigid_branches(server: Luigid, status: str) -> list[int]:
    tasks = server.api("task_list", status=status, upstream_status="", search="Claimed")
    return sorted(int(t["params"]["branch"]) for t in tasks.values()
                  if t["name"] == "Claimed" and t["params"]["branch"] != "-1")


def test_overlapping_selections_run_each_branch_once(tmp_path, luigid):  # noqa: F811
    project(tmp_path)
    first = start(tmp_path, luigid, "--branches", "0-5", "--workers", "2", name="first")
    second = start(tmp_path, luigid, "--branches", "3-8", "--workers", "2", name="second")
    (code1, err1), (code2, err2) = first.wait(), second.wait()
    assert (code1, code2) == (0, 0), err1 + err2
    runs = records(tmp_path)
    counts = collections.Counter(r.branch for r in runs)
    assert counts == {b: 1 for b in range(9)}, f"every branch runs exactly once: {runs}"
    assert all(r.end is not None for r in runs)
    assert_no_overlap(runs)
    assert luigid_branches(luigid, "DONE") == list(range(9)), "every branch's claim was released as DONE"
    # the lock was luigid's: under a central scheduler no machine-local lock file is made
    assert not (tmp_path / "store" / ".pylaw-locks").exists()


def test_same_workflow_from_two_processes(tmp_path, luigid):  # noqa: F811
    project(tmp_path)
    args = ("--n", "4", "--workers", "2", "--slow", "3")
    first = start(tmp_path, luigid, *args, name="first")
    wait_until(lambda: records(tmp_path), "the first run started a branch")
    second = start(tmp_path, luigid, *args, name="second")
    (code1, err1), (code2, err2) = first.wait(), second.wait()
    assert code1 == 0, err1
    assert code2 == 3 and "run by another worker" in err2, err2  # luigid's lock on the workflow task itself
    runs = records(tmp_path)
    assert sorted(r.branch for r in runs) == [0, 1, 2, 3]
    assert_no_overlap(runs)


def test_a_branch_run_directly_is_not_run_again_by_its_workflow(tmp_path, luigid):  # noqa: F811
    project(tmp_path)
    direct = start(tmp_path, luigid, "--branch", "4", "--slow", "4", name="direct")
    wait_until(lambda: any(r.branch == 4 for r in records(tmp_path)), "the direct run started branch 4")
    workflow = start(tmp_path, luigid, "--branches", "2-6", name="workflow")
    (code_d, err_d), (code_w, err_w) = direct.wait(), workflow.wait()
    assert (code_d, code_w) == (0, 0), err_d + err_w
    runs = records(tmp_path)
    assert [r.pid for r in runs if r.branch == 4] == [direct.pid], runs
    assert sorted(r.branch for r in runs) == [2, 3, 4, 5, 6]
    assert_no_overlap(runs)
    assert "1 made by another run" in err_w, err_w


def test_a_branch_claimed_by_a_workflow_is_not_run_directly(tmp_path, luigid):  # noqa: F811
    project(tmp_path)
    # branch 3 takes 6.4 s: the direct run asks for it while the workflow's claim holds it
    workflow = start(tmp_path, luigid, "--branches", "2-6", "--sleep", "0.8", "--slow", "3", name="workflow")
    wait_until(lambda: any(r.branch == 3 for r in records(tmp_path)), "the workflow started branch 3")
    assert 3 in luigid_branches(luigid, "BATCH_RUNNING") + luigid_branches(luigid, "RUNNING")
    direct = start(tmp_path, luigid, "--branch", "3", "--sleep", "0.8", name="direct")
    (code_w, err_w), (code_d, err_d) = workflow.wait(), direct.wait()
    assert code_w == 0, err_w
    runs = records(tmp_path)
    assert [r.pid for r in runs if r.branch == 3] == [workflow.pid], runs
    assert_no_overlap(runs)
    assert code_d == 3 and "already running elsewhere" in err_d, err_d  # luigid did not give it the branch


def test_claims_of_a_killed_run_expire(tmp_path, luigid_short_leases):  # noqa: F811
    server = luigid_short_leases
    project(tmp_path)
    victim = start(tmp_path, server, "--branches", "0-5", "--sleep", "1.0", name="victim")
    wait_until(lambda: any(r.branch == 1 for r in records(tmp_path)), "the victim started branch 1")
    os.killpg(victim.pid, signal.SIGKILL)
    killed = time.time()
    victim.wait()
    held = luigid_branches(server, "BATCH_RUNNING") + luigid_branches(server, "RUNNING")
    assert 1 in held, "the dead run's claim is still in luigid"
    heir = start(tmp_path, server, "--branches", "1-6", "--sleep", "1.0", name="heir")
    code, err = heir.wait(timeout=90)
    assert code == 0, err
    runs = records(tmp_path)
    by_victim = [r for r in runs if r.pid == victim.pid]
    assert [r.branch for r in by_victim if r.end is None] == [1], by_victim  # killed while running branch 1
    heir_runs = {r.branch: r for r in runs if r.pid == heir.pid}
    assert sorted(heir_runs) == [1, 2, 3, 4, 5, 6], runs  # branch 1 became runnable again
    assert heir_runs[1].start > killed
    assert 0 not in heir_runs  # made by the victim before it died, outside the heir's selection anyway
    assert_no_overlap([r for r in runs if r.end is not None])
    assert luigid_branches(server, "DONE") == [1, 2, 3, 4, 5, 6]
    # branch 0 was made, but its batch's release died with the victim: luigid failed the expired claim
    # (outputs, not luigid's status, say what is made)
    assert luigid_branches(server, "FAILED") == [0]


def test_progress_reaches_luigids_task_list(tmp_path, luigid):  # noqa: F811
    project(tmp_path)
    run = start(tmp_path, luigid, "--branches", "0-5", "--sleep", "0.5", name="progress")
    seen: list[tuple[str, int]] = []
    while run.process.poll() is None:
        for task in luigid.api("task_list", status="RUNNING", upstream_status="", search="Claimed").values():
            if task["name"] == "Claimed" and task["params"]["branch"] == "-1" and task["status_message"]:
                seen.append((task["status_message"], task["progress_percentage"]))
        time.sleep(0.2)
    code, err = run.wait()
    assert code == 0, err
    assert seen, "no status message while branches ran"
    for message, percent in seen:  # always consistent, and a branch runs whenever the loop reports
        match = re.fullmatch(r"branches: (\d)/6 done, 0 failed, 1 running, (\d) pending", message)
        assert match and int(match[1]) + 1 + int(match[2]) == 6, seen
        assert percent == int(100 * int(match[1]) / 6), seen
    assert len({m for m, _ in seen}) >= 3, f"progress did not move in luigid: {seen}"
    found = luigid.api("task_search", task_str="Claimed")
    (workflow,) = [t for t in found["DONE"].values() if t["name"] == "Claimed" and t["params"]["branch"] == "-1"]
    assert workflow["status_message"] == "branches: 6/6 done, 0 failed, 0 running, 0 pending"
    assert workflow["progress_percentage"] == 100


def numbers(ranges: str) -> list[int]:
    """``"0-2,5"`` -> ``[0, 1, 2, 5]``."""
    found = []
    for part in ranges.split(","):
        first, _, last = part.partition("-")
        found += range(int(first), int(last or first) + 1)
    return found


def test_task_history_records_the_workflow_and_its_branch_claims(tmp_path, luigid_with_history):  # noqa: F811
    server, db = luigid_with_history
    project(tmp_path)
    run = start(tmp_path, server, "--branches", "0-5", "--workers", "2", "--fail", "2", name="history")
    code, err = run.wait()
    assert code == 1, err
    with sqlite3.connect(db) as history:
        rows = history.execute(
            "SELECT t.id, t.name, t.task_id, e.event_name FROM tasks t JOIN task_events e ON e.task_id = t.id "
            "ORDER BY e.ts, e.id").fetchall()
        params = dict(((record, name), value) for record, name, value in history.execute(
            "SELECT task_id, name, value FROM task_parameters"))
    events = collections.defaultdict(list)
    for record, name, _, event in rows:
        events[(name, params.get((record, "branch")) or params.get((record, "branches")))].append(event)
    assert events[("Claimed", "-1")][-2:] == ["RUNNING", "FAILED"], events  # the workflow itself
    assert events[("Claimed", "2")][-1] == "FAILED", events  # the failed branch, released alone
    claims = {key: each for key, each in events.items() if key[0] == "Claimed__claims"}
    assert all(each == ["RUNNING", "DONE"] for each in claims.values()), claims
    claimed = sorted(b for (_, branches) in claims for b in numbers(branches))
    assert claimed == [0, 1, 2, 3, 4, 5], f"each branch claimed once, in batches: {claims}"


def test_luigid_gone_stops_the_claims_with_a_clear_error(tmp_path):
    project(tmp_path)
    (tmp_path / "luigi.cfg").write_text("[pylaw]\nmodules = claimtasks\n[core]\nlog_level = WARNING\n"
                                        "rpc-retry-attempts = 1\nrpc-retry-wait = 0\n")  # give up at once
    servers = start_luigid(tmp_path)
    server = next(servers)
    run = start(tmp_path, server, "--branches", "0-7", "--sleep", "0.6", name="cut")
    wait_until(lambda: any(r.branch == 2 for r in records(tmp_path)), "the run started branch 2")
    servers.close()  # luigid stops (by its pid) while the run holds branches 2 and 3 (one batch of two)
    code, err = run.wait()
    assert code != 0, err
    assert "BranchClaimError" in err and "did not answer" in err and "No further branch is claimed" in err, err
    runs = records(tmp_path)
    assert all(r.end is not None for r in runs), f"a started branch was cut short: {runs}"
    assert max(r.branch for r in runs) <= 3, f"a branch started without a claim: {runs}"
    made = sorted(int(p.stem.partition("_")[2]) for p in (tmp_path / "store").rglob("c_*.txt"))
    assert made == sorted(r.branch for r in runs)


def test_claims_survive_a_clean_restart_of_luigid(tmp_path):
    project(tmp_path)
    (tmp_path / "luigi.cfg").write_text("[pylaw]\nmodules = claimtasks\n[core]\nlog_level = WARNING\n"
                                        "rpc-retry-attempts = 20\nrpc-retry-wait = 1\n")  # ride out the restart
    servers = start_luigid(tmp_path)
    server = next(servers)
    holder = start(tmp_path, server, "--branches", "0-5", "--sleep", "0.8", name="holder")
    wait_until(lambda: any(r.branch == 2 for r in records(tmp_path)), "the holder started branch 2")
    servers.close()  # SIGTERM: luigid saves its state, claims included
    servers = start_luigid(tmp_path, port=server.port)
    next(servers)
    try:
        held = server.api("task_list", status="BATCH_RUNNING", upstream_status="", search="Claimed")
        assert {t["params"]["branch"] for t in held.values()} >= {"2"}, "the claim was lost in the restart"
        assert all(t["worker_running"].startswith("pylaw-branches:") for t in held.values())
        other = start(tmp_path, server, "--branches", "0-7", "--sleep", "0.8", name="other")
        (code1, err1), (code2, err2) = holder.wait(), other.wait()
    finally:
        servers.close()
    assert (code1, code2) == (0, 0), err1 + err2
    runs = records(tmp_path)
    assert sorted(r.branch for r in runs) == list(range(8)), f"every branch once: {runs}"
    assert_no_overlap(runs)
