"""Directory outputs never look complete half-written: real processes, really SIGKILLed.

The writers are in dir_tasks.py; each test runs them in a subprocess (``python -c``),
kills them at chosen points or at random moments, and looks at what is on disk.
"""

import os
import random
import signal
import subprocess
import textwrap
import time

import luigi
import pytest

import pylaw
from pylaw.target import dirstage
from tests.conftest import PYTHON, ROOT, cli_env
from tests.target.dir_tasks import FILES, DirBranches, DirWriter, NestedDirs, build, read_version, write_version


def script(code: str) -> list[str]:
    return [PYTHON, "-c", "from tests.target.dir_tasks import *\n" + textwrap.dedent(code)]


def child(tmp_path, code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(script(code), env=cli_env(tmp_path, **env), cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def assert_one_version(path: str | dict[str, str], tags: set[str]) -> str:
    """The directory (or its contents read before) holds exactly the four files of one version
    (and a task's pid file); returns its tag."""
    contents = read_version(path) if isinstance(path, str) else path
    contents = {name: text for name, text in (contents or {}).items() if not name.endswith(".pid")} or None
    assert contents is not None and sorted(contents) == sorted(FILES), contents
    assert len(set(contents.values())) == 1, f"a mixture of versions: {contents}"
    tag = next(iter(contents.values()))[0]
    assert tag in tags
    return tag


def no_leftovers(directory: str) -> bool:
    return not [name for name in os.listdir(directory) if name.startswith(".pylaw-tmp-")]


# -- a task writing its directory, killed ------------------------------------------------

@pytest.mark.parametrize("how,point", [
    ("makedirs", "file1"),   # 2 of 4 files written
    ("makedirs", "file3"),   # every file written, killed before run() returned
    ("child", "file1"),      # out.child(...).dump(...) creates the directory itself
    ("localize", "file1"),
])
def test_task_killed_mid_write_leaves_the_directory_missing_and_the_rerun_completes(tmp_path, how, point):
    task = DirWriter(version="v1", how=how)
    out = task.output()
    result = child(tmp_path, f"build(DirWriter(version='v1', how={how!r}))", KILL_AT=point)
    assert result.returncode == -signal.SIGKILL, result.stderr
    if how != "localize":
        assert os.path.isdir(out.path), "the killed run wrote into the final path"
    assert not out.exists() and not task.complete()
    assert pylaw.TargetCollection([out]).count() == 0  # the listing path agrees

    result = child(tmp_path, f"build(DirWriter(version='v1', how={how!r}))")
    assert result.returncode == 0, result.stderr
    assert out.exists() and task.complete()
    names = sorted(os.listdir(out.path))
    if how != "localize":
        pid_files = [name for name in names if name.endswith(".pid")]
        assert len(pid_files) == 1, f"the killed run's partial directory was not removed: {names}"
        names.remove(pid_files[0])
    assert names == sorted(FILES)
    assert no_leftovers(out.parent.path), os.listdir(out.parent.path)


@pytest.mark.parametrize("function,when,expected", [
    ("finish_directory_outputs", "call", "missing"),  # run() returned, the guard not lifted yet
    ("clean_leftovers", "call", "complete"),           # the marker removed: the directory is complete
])
def test_task_killed_while_its_guard_is_lifted(tmp_path, function, when, expected):
    out = DirWriter(version="v1").output()
    result = child(tmp_path, f"kill_on_call({function!r}, {when!r}); build(DirWriter(version='v1'))")
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert out.exists() == (expected == "complete")
    if expected == "complete":
        assert_one_version(out.path, {"x"})


def test_failed_task_leaves_the_directory_missing(tmp_path):
    task = DirWriter(version="v1")
    result = child(tmp_path, "import sys; sys.exit(0 if build(DirWriter(version='v1')) else 3)", FAIL="1")
    assert result.returncode == 3, result.stderr
    assert os.path.isdir(task.output().path) and not task.complete()
    assert build(DirWriter(version="v1")) and task.complete()


def test_nested_directory_outputs_are_guarded_by_the_outer_one(tmp_path):
    task = NestedDirs(version="v1")
    assert build(task), "the guard created the outer directory before run()"
    assert task.complete()


def test_check_complete_on_run_is_not_broken_by_the_guard(tmp_path, caplog):
    config = luigi.configuration.get_config()
    config.set("worker", "check_complete_on_run", "true")
    try:
        with caplog.at_level("WARNING", logger="pylaw.target"):
            assert build(DirWriter(version="v1"))
    finally:
        config.remove_option("worker", "check_complete_on_run")
    assert DirWriter(version="v1").complete()
    assert "check_complete_on_run" in caplog.text


# -- localize("w"): staging and publishing, killed at every step ---------------------------

POINTS = {
    # (existing version?, exchange available?) -> [(kill point, what the path must show)]
    "fresh": [("file1", "missing"), ("rename:call:1", "missing"), ("rename:return:1", "new"),
              ("clean_leftovers:call:1", "new")],
    "replace": [("file1", "old"), ("rename:call:1", "old"), ("remove_tree:call:1", "new"),
                ("clean_leftovers:call:1", "new")],
    # without renameat2: rename 1 fails (ENOTEMPTY: it never returns), 2 moves the old version
    # aside, 3 puts the new one in
    "replace-portable": [("rename:call:2", "old"), ("rename:call:3", "missing"), ("rename:return:2", "new"),
                         ("remove_tree:call:1", "new")],
}


@pytest.mark.parametrize("case,point,expected", [(c, p, e) for c, points in POINTS.items() for p, e in points])
def test_localize_killed_at_any_step_shows_one_version_or_none(tmp_path, case, point, expected):
    path = str(tmp_path / "d" / "out")
    if ":" in point:
        name, when, nth = point.split(":")
        kill = f"kill_on_call({name!r}, {when!r}, {nth})"
    else:
        kill = f"os.environ['KILL_AT'] = {point!r}"
    code = f"""
        import os
        from pylaw.target import dirstage
        t = pylaw.LocalDirectoryTarget({path!r})
        if {case != "fresh"}:
            with t.localize("w") as tmp:
                write_version(tmp.path, "o")
        if {case == "replace-portable"}:
            dirstage._renameat2 = None  # the path taken where Linux's renameat2 is missing
        {kill}
        with t.localize("w") as tmp:
            write_version(tmp.path, "n")
    """
    result = child(tmp_path, code)
    assert result.returncode == -signal.SIGKILL, result.stderr
    target = pylaw.LocalDirectoryTarget(path)
    if expected == "missing":
        assert not target.exists() and not os.path.exists(path)
    else:
        assert target.exists()
        assert assert_one_version(path, {"o", "n"}) == expected[0]
    # the next successful write removes what the killed one left
    with target.localize("w") as tmp:
        write_version(tmp.path, "z")
    assert assert_one_version(path, {"z"}) == "z"
    assert os.listdir(tmp_path / "d") == ["out"]


def test_localize_replaces_the_whole_tree_and_keeps_it_on_errors(tmp_path):
    target = pylaw.LocalDirectoryTarget(tmp_path / "out")
    with target.localize("w") as tmp:
        assert tmp.exists() and tmp.listdir() == [] and not target.exists()
        for name in ("a", "b", "c"):
            tmp.child(name).dump(name, formatter="text")
    with pytest.raises(RuntimeError), target.localize("w") as tmp:
        tmp.child("a").dump("half", formatter="text")
        raise RuntimeError("the program failed")
    assert target.listdir() == ["a", "b", "c"] and target.child("a").load(formatter="text") == "a"
    with target.localize("w") as tmp:
        tmp.child("a").dump("new", formatter="text")
    assert target.listdir() == ["a"] and target.child("a").load(formatter="text") == "new"
    assert os.listdir(tmp_path) == ["out"]
    with target.localize("r") as local:
        assert local is target


def test_localize_refuses_a_replaced_staging_directory(tmp_path):
    target = pylaw.LocalDirectoryTarget(tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="write into it"), target.localize("w") as tmp:
        os.rmdir(tmp.path)
        os.mkdir(tmp.path)
    assert not target.exists() and os.listdir(tmp_path) == []


def test_remove_and_copy_are_atomic_and_leave_nothing(tmp_path):
    target = pylaw.LocalDirectoryTarget(tmp_path / "out")
    with target.localize("w") as tmp:
        write_version(tmp.path, "a")
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "stale.txt").write_text("from before")
    copy = target.copy_to(str(tmp_path / "copy"))
    assert_one_version(copy.path, {"a"})
    assert target.remove() and not target.exists() and not target.remove()
    with pytest.raises(FileNotFoundError):
        target.remove(silent=False)
    assert os.listdir(tmp_path) == ["copy"]


@pytest.mark.parametrize("mode", ["localize", "task"])
def test_random_kills_never_leave_a_partial_directory(tmp_path, mode):
    """Kill writers at random moments; whenever the directory exists it is one whole version."""
    if mode == "localize":
        path = str(tmp_path / "d" / "out")
        code = f"""
            import itertools
            t = pylaw.LocalDirectoryTarget({path!r})
            print("ready", flush=True)
            for i in itertools.count():
                with t.localize("w") as tmp:
                    write_version(tmp.path, "abcdefgh"[i % 8], size=200_000)
        """
    else:
        path = DirWriter(version="v1", how="makedirs", tag="t").output().path
        code = """
            import itertools, time
            from luigi.task_register import Register
            print("ready", flush=True)
            for i in itertools.count():
                task = DirWriter(version="v1", how="makedirs", tag="t")
                task.output().remove()
                assert build(task)
                Register.clear_instance_cache()
                time.sleep(0.3)  # complete for a while, so that about half of the kills find it so
        """
    rng = random.Random(9)
    seen = {"exists": 0, "missing": 0}
    for _ in range(8):
        env = cli_env(tmp_path, PAUSE="0.03" if mode == "task" else "0")  # task: a long mid-write window
        proc = subprocess.Popen(script(code), env=env, cwd=ROOT, stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.05, 0.6))
        proc.kill()
        assert proc.wait() == -signal.SIGKILL
        target = pylaw.LocalDirectoryTarget(path)
        if target.exists():
            seen["exists"] += 1
            contents = read_version(path)
            names = sorted(name for name in contents if not name.endswith(".pid"))
            assert names == sorted(FILES), contents
            assert len({contents[name] for name in names}) == 1, f"a mixture of versions: {contents}"
        else:
            seen["missing"] += 1
    assert seen["exists"] and (seen["missing"] or mode == "localize"), f"the kills missed a state: {seen}"


# -- concurrent writers -----------------------------------------------------------------------

def test_two_concurrent_localize_writers_never_collide(tmp_path):
    path = str(tmp_path / "d" / "out")
    code = f"""
        import sys
        t = pylaw.LocalDirectoryTarget({path!r})
        for i in range(40):
            with t.localize("w") as tmp:
                write_version(tmp.path, sys.argv[1], size=20_000)
    """
    writers = [subprocess.Popen([*script(code), tag], env=cli_env(tmp_path), cwd=ROOT, stderr=subprocess.PIPE)
               for tag in ("p", "q")]
    samples = 0
    while any(w.poll() is None for w in writers):
        contents = read_version(path)
        if contents is not None:
            assert_one_version(contents, {"p", "q"})
            samples += 1
        time.sleep(0.001)
    assert [w.wait() for w in writers] == [0, 0], [w.stderr.read().decode()[-2000:] for w in writers]
    assert samples > 0
    assert_one_version(path, {"p", "q"})
    assert os.listdir(tmp_path / "d") == ["out"], "a writer's temporary directory was left or taken"


def test_clean_leftovers_spares_a_live_writer(tmp_path):
    path = str(tmp_path / "out")
    go = tmp_path / "go"
    code = f"""
        import os, time
        t = pylaw.LocalDirectoryTarget({path!r})
        with t.localize("w") as tmp:
            kill_point("staged")
            print(tmp.path, flush=True)
            while not os.path.exists({str(go)!r}):
                time.sleep(0.02)
            write_version(tmp.path, "l")
    """
    dead = subprocess.run(script(code), env=cli_env(tmp_path, KILL_AT="staged"), cwd=ROOT)
    assert dead.returncode == -signal.SIGKILL
    live = subprocess.Popen(script(code), env=cli_env(tmp_path), cwd=ROOT, stdout=subprocess.PIPE, text=True)
    staged = live.stdout.readline().strip()
    target = pylaw.LocalDirectoryTarget(path)
    holder = dirstage.holder_path(path)
    assert len(os.listdir(holder)) == 2
    assert target.clean_leftovers() == 1, "exactly the dead writer's directory goes"
    assert os.listdir(holder) == [os.path.basename(staged)]
    go.touch()
    assert live.wait(timeout=60) == 0
    assert_one_version(path, {"l"}) and not os.path.exists(holder)


def test_a_task_run_twice_at_once_is_complete_only_when_the_last_run_finished(tmp_path):
    task = DirWriter(version="v1")
    release = tmp_path / "release"
    first = subprocess.Popen(script("build(DirWriter(version='v1'))"), env=cli_env(tmp_path, BLOCK_UNTIL=str(release)),
                             cwd=ROOT)
    marker = dirstage.marker_path(task.output().path)
    deadline = time.monotonic() + 60
    while not any(name.endswith(".pid") for name in (os.listdir(task.output().path)
                                                     if os.path.isdir(task.output().path) else [])):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    second = child(tmp_path, "build(DirWriter(version='v1'))", EXIST_OK="1")
    assert second.returncode == 0 and "at the same time" in second.stderr
    assert os.path.exists(marker) and not task.complete(), "complete while the first run is unfinished"
    first.kill()
    assert first.wait() == -signal.SIGKILL
    assert not task.complete()
    assert child(tmp_path, "build(DirWriter(version='v1'))").returncode == 0
    assert task.complete() and no_leftovers(task.output().parent.path)


# -- a workflow whose branches output directories --------------------------------------------

def test_workflow_of_directories_counts_only_finished_branches(tmp_path, isolated):
    workflow = DirBranches(version="v1")
    log = isolated / "runs.log"
    result = child(tmp_path, "build(DirBranches(version='v1'))", KILL_AT="branch2-file1")
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert log.read_text().split() == ["0", "1", "2"]
    assert os.path.isdir(workflow.as_branch(2).output().path)  # half-written, under its final name
    assert workflow.workflow_output().missing() == [2, 3]
    assert workflow.workflow_output().count() == 2 and not workflow.complete()

    assert build(workflow) and workflow.complete()
    assert log.read_text().split() == ["0", "1", "2", "2", "3"]
    for branch in range(4):
        assert_one_version(workflow.as_branch(branch).output().path, {"abcd"[branch]})
    assert no_leftovers(workflow.as_branch(0).output().parent.path)


def test_workflow_branch_killed_alone_is_not_counted(tmp_path, isolated):
    workflow = DirBranches(version="v1")
    assert build(workflow) and workflow.complete()
    workflow.as_branch(1).output().remove()
    result = child(tmp_path, "build(DirBranches(version='v1', branch=1))", KILL_AT="branch1-file2")
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert workflow.workflow_output().missing() == [1] and not workflow.complete()
    listing = os.listdir(workflow.as_branch(0).output().parent.path)
    assert "d_1" in listing and ".pylaw-tmp-w-d_1" in listing  # one listing sees both, and is not confused
    assert build(workflow) and workflow.workflow_output().count() == 4


def test_workflow_of_directories_with_forked_branch_processes(tmp_path):
    workflow = DirBranches(version="v1")
    assert luigi.build([workflow], local_scheduler=True, workers=2, log_level="WARNING")
    assert workflow.complete() and workflow.workflow_output().count() == 4
    for branch in range(4):
        assert_one_version(workflow.as_branch(branch).output().path, {"abcd"[branch]})
    assert no_leftovers(workflow.as_branch(0).output().parent.path)
