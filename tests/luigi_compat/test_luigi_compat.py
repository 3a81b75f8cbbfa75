"""Luigi's own test suite (of the installed Luigi) against pylaw's Task, held to allowlist.txt.

Fails when one of Luigi's tests fails that the allow-list does not name, when a listed test
passes (a stale entry: delete it), and when an ``environment`` entry passes with plain Luigi.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.luigi_compat import allowlist
from tests.luigi_compat.run import MODULES, Outcome, run


def _lines(outcomes: list[Outcome]) -> str:
    return "\n".join(f"  {o.nodeid}  [{o.result}] {o.message}" for o in outcomes)


@pytest.mark.timeout(1200)
def test_luigi_suite_passes_against_pylaw_task():
    entries = allowlist.read()
    not_run = allowlist.of_kind(entries, "environment", "flaky")
    environment = allowlist.of_kind(entries, "environment")
    # the short plain-Luigi run (only the environment entries) overlaps the long one
    with ThreadPoolExecutor(2) as pool:
        pylaw_run = pool.submit(run, True, deselect=not_run)
        plain_run = pool.submit(run, False, select=environment)
        outcomes = {o.nodeid: o for o in pylaw_run.result()}
        plain = {o.nodeid: o for o in plain_run.result()}

    assert len(outcomes) > 600, f"only {len(outcomes)} of Luigi's tests ran from {len(MODULES)} modules"
    expected = {"failed": "pylaw", "skipped": "skipped"}
    unexpected = [o for o in outcomes.values()
                  if o.result != "passed" and (o.nodeid not in entries or entries[o.nodeid].kind != expected[o.result])]
    stale = [o for nodeid in allowlist.of_kind(entries, "pylaw", "skipped")
             if (o := outcomes.get(nodeid, Outcome(nodeid, "not run"))).result in ("passed", "not run")]
    env_stale = [o for nodeid in environment if (o := plain.get(nodeid, Outcome(nodeid, "not run"))).result != "failed"]
    assert not unexpected, f"Luigi's tests failing against pylaw, not in {allowlist.PATH}:\n{_lines(unexpected)}"
    assert not stale, f"allow-listed tests that now pass (or no longer exist): remove them:\n{_lines(stale)}"
    assert not env_stale, f"'environment' entries that do not fail with plain Luigi:\n{_lines(env_stale)}"


def test_allowlist_reasons_are_given_per_group():
    entries = allowlist.read()
    assert entries and all(entry.reason.strip() for entry in entries.values())
    assert len({entry.reason for entry in entries.values()}) <= 12, "the allow-list must stay short: group by reason"
