"""Batch commands do not inherit what pylaw set in its own environment for itself."""

import os

from pylaw import processenv
from pylaw.job.command import CommandRunner
from pylaw.target.remote import xrootd


def env_of_child(runner: CommandRunner) -> dict[str, str]:
    output = runner.run(["env", "-0"]).stdout
    return dict(item.split("=", 1) for item in output.split("\0") if "=" in item)


def test_pylaws_xrootd_defaults_stay_out_of_batch_commands_but_user_values_reach_them(monkeypatch):
    for key in xrootd.CLIENT_SETTINGS:
        monkeypatch.delenv(f"XRD_{key.upper()}", raising=False)
    monkeypatch.setenv("XRD_REQUESTTIMEOUT", "7")  # the user's own setting
    monkeypatch.setattr(processenv, "_SET_BY_PYLAW", {})
    xrootd.client_defaults()
    assert os.environ["XRD_STREAMERRORWINDOW"] == "0" and os.environ["XRD_REQUESTTIMEOUT"] == "7"
    child = env_of_child(CommandRunner())
    assert "XRD_STREAMERRORWINDOW" not in child, "pylaw's default leaked into a batch command"
    assert child["XRD_REQUESTTIMEOUT"] == "7"
    assert child["PATH"] == os.environ["PATH"]
    assert env_of_child(CommandRunner(env={"EXTRA": "1"}))["EXTRA"] == "1"
    for key in processenv._SET_BY_PYLAW:
        monkeypatch.delenv(key, raising=False)
