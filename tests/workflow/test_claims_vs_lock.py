"""The luigid claims path against the machine-local lock path, on many cases: the same
branches run, the same outputs, the same failures, the same result of the build."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import luigi
import pytest

import pylaw
from pylaw.workflow.local import failure_log
from tests.services.luigid import luigid  # noqa: F401 - fixture


class Tally(pylaw.Task, pylaw.LocalWorkflow):
    n = luigi.IntParameter(default=10)
    fail = pylaw.CSVParameter(inner=luigi.IntParameter(), default=())

    def create_branch_map(self):
        return {i: i * 7 for i in range(self.n)}

    def output(self):
        return self.local_target(f"t_{self.branch}.json")

    def run(self):
        with open(os.environ["TALLY_RUNS"], "a") as runs:  # forked branch workers write here too
            runs.write(f"{self.branch}\n")
        if self.branch in self.fail:
            raise ValueError(f"branch {self.branch} is broken")
        self.output().dump({"branch": self.branch, "payload": self.branch_data})


def cases(count: int = 10) -> list[dict]:
    rng = random.Random(13)
    found = []
    for _ in range(count):
        n = rng.randint(1, 40)
        numbers = list(range(n))
        lo = rng.randint(0, n - 1)
        found.append({
            "n": n, "workers": rng.choice([1, 2]),
            "fail": tuple(sorted(rng.sample(numbers, rng.randint(0, min(3, n))))),
            "made": sorted(rng.sample(numbers, rng.randint(0, n // 2))),
            "branches": rng.choice(["", f"{lo}-{rng.randint(lo, n - 1)}"]),
        })
    return found


def outcome(root, monkeypatch, case: dict, **scheduler) -> dict:
    """Run the case in a store of its own; what ran, what exists, what failed, the build's result."""
    monkeypatch.setenv("PYLAW_STORE", str(root / "store"))
    monkeypatch.setenv("TALLY_RUNS", str(root / "runs.log"))
    root.mkdir()
    luigi.task_register.Register.clear_instance_cache()
    task = Tally(version="v1", n=case["n"], fail=case["fail"], branches=case["branches"])
    for number in case["made"]:  # made before the run: never run again
        task.as_branch(number).output().dump({"branch": number, "payload": "earlier"})
    ok = luigi.build([task], workers=case["workers"], log_level="ERROR", **scheduler)
    runs = sorted(int(b) for b in (root / "runs.log").read_text().split()) if (root / "runs.log").exists() else []
    files = {p.name: p.read_text() for p in (root / "store").rglob("t_*.json")}
    log = Path(failure_log(task))
    failed = sorted(int(b) for b in re.findall(r"^## branch (\d+)$", log.read_text(), re.M)) if log.exists() else []
    return {"ok": ok, "runs": runs, "files": files, "failed": failed}


@pytest.mark.parametrize("case", cases(), ids=lambda c: f"n{c['n']}-w{c['workers']}-{c['branches'] or 'all'}")
def test_claims_and_local_lock_agree(tmp_path, monkeypatch, luigid, case):  # noqa: F811
    local = outcome(tmp_path / "local", monkeypatch, case, local_scheduler=True)
    claimed = outcome(tmp_path / "luigid", monkeypatch, case, scheduler_host="127.0.0.1",
                      scheduler_port=luigid.port)
    assert claimed == local
    # each path was the one asked for: lock bytes only with the local scheduler, claims only in luigid
    assert (tmp_path / "local" / "store" / ".pylaw-locks").exists() == bool(local["runs"])
    assert not (tmp_path / "luigid" / "store" / ".pylaw-locks").exists()
    in_luigid = luigid.api("task_list", status="", upstream_status="", search="Tally")
    assert sorted(int(t["params"]["branch"]) for t in in_luigid.values()
                  if t["name"] == "Tally" and t["params"]["branch"] != "-1") == local["runs"]
    selected = set(Tally(version="v1", n=case["n"], branches=case["branches"]).branch_numbers())
    assert local["runs"] == sorted(selected - set(case["made"])), "each missing branch ran exactly once"
    assert local["failed"] == sorted(selected & set(case["fail"]) - set(case["made"]))
