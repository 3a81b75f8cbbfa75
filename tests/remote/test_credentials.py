"""Credentials reach a token-protected WebDAV door and never pylaw's messages or logs.

A real nginx refuses every request without ``Authorization: Bearer <token>``; GFAL2's http
plugin sends the token of ``BEARER_TOKEN``, as on the grid.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from pylaw.errors import RemoteFileNotFoundError, RemotePermissionError
from pylaw.target.remote.filesystem import RemoteFileSystem
from pylaw.target.remote.gfal import GFALInterface
from pylaw.target.remote.retry import RetryPolicy
from pylaw.target.remote.target import RemoteFileTarget, forget_filesystems, register_filesystem
from tests.remote.conftest import CountingInterface
from tests.services._process import running
from tests.services.nginx_webdav import NginxWebDAVServer

TOKEN = "pylawTestToken" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def door() -> Iterator[NginxWebDAVServer]:
    yield from running(NginxWebDAVServer(token=TOKEN), "nginx (WebDAV with a bearer token)")


@pytest.fixture
def fs(door) -> Iterator[RemoteFileSystem]:
    fs = RemoteFileSystem(f"door-{uuid.uuid4().hex[:6]}", [f"{door.url}/{uuid.uuid4().hex[:8]}"],
                          CountingInterface(GFALInterface()), RetryPolicy(attempts=3, delay=0.01))
    register_filesystem(fs)
    yield fs
    forget_filesystems()


def test_without_a_token_the_door_refuses_at_once(fs, monkeypatch) -> None:
    monkeypatch.delenv("BEARER_TOKEN", raising=False)
    with pytest.raises(RemotePermissionError, match="check your credentials"):
        fs.mkdir("/")
    assert fs.interface.calls == {"mkdir": 1}  # a refusal is an answer: not retried


def test_with_the_token_targets_work_and_it_never_reaches_messages_or_logs(fs, monkeypatch, caplog) -> None:
    monkeypatch.setenv("BEARER_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)
    fs.mkdir("/")
    target = RemoteFileTarget("reco/out.json", fs=fs.name)
    target.parent.touch()
    target.dump({"mu": 1.0})
    assert target.load() == {"mu": 1.0}
    with pytest.raises(RemoteFileNotFoundError) as info:
        fs.stat("/reco/missing.json")
    assert TOKEN not in str(info.value)
    assert caplog.records and all(TOKEN not in record.getMessage() for record in caplog.records)
