"""Submission failures of the real bindings mapped to refusals: a schedd that is down, one that hangs.

A schedd that is down is a closed port (no pool needed); the other messages were captured
from the real pool and from a socket that accepts and never answers (data/README.md).
"""

from __future__ import annotations

import os
import socket

import pytest

from pylaw.job.base import JobContext, JobRequest, Refusal
from pylaw.job.htcondor import HTCondorJobFileFactory, HTCondorJobManager, HTCondorSettings
from tests.services._process import require_module

htcondor2 = require_module("htcondor2")
classad2 = require_module("classad2")


def manager_for(port: int, tmp_path) -> tuple[HTCondorJobManager, list]:
    settings = HTCondorSettings()
    manager = HTCondorJobManager(str(tmp_path), settings)
    manager._schedd = htcondor2.Schedd(classad2.ClassAd({"MyAddress": f"<127.0.0.1:{port}>", "CondorVersion": "x"}))
    context = JobContext(command=["true"], job_dir=str(tmp_path), task_name="Refusal")
    batches = HTCondorJobFileFactory(settings).render([JobRequest("0", (0,)), JobRequest("1", (1,))], context, 10)
    return manager, batches


def test_schedd_down_is_transient(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: connection refused
    manager, batches = manager_for(port, tmp_path)
    results = manager.submit(batches)
    assert [r.refusal for r in results] == [Refusal.TRANSIENT] * 2 and not any(r.job_id for r in results)
    assert "Failed to connect to schedd" in results[0].error


def messages() -> list[tuple[str, str]]:
    path = os.path.join(os.path.dirname(__file__), "data", "htcondor_submit_errors.txt")
    with open(path) as f:
        return [tuple(line.rstrip("\n").split("\t", 1)) for line in f if line.strip()]  # type: ignore[misc]


@pytest.mark.parametrize(("expected", "message"), messages())
def test_real_failure_messages_map_to_refusals(expected, message):
    assert HTCondorJobManager.refusal(message) is Refusal(expected)
