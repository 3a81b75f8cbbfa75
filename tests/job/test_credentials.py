"""Grid credentials: real proxies from arcproxy / voms-proxy-fake, JWTs built here, checked by pylaw."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pylaw.errors import CredentialError, CredentialLifetimeError, CredentialNotFoundError, PylawError
from pylaw.job.command import CommandRunner
from pylaw.job.credentials import CredentialWatch, inspect_credentials, require_credentials
from tests.services.gridcerts import TestCA, certificate_end, require_tools

FAKE_SECRET = "PYLAWFAKESECRETc2VjcmV0LWtleS1tYXRlcmlhbA"  # must never appear in any message or log
HOUR = 3600.0


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> TestCA:
    require_tools()
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def user(ca):
    return ca.issue("user", "test user")


@pytest.fixture(scope="module")
def proxies(ca, user, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("proxies")
    now = datetime.now(timezone.utc)
    made = {
        "valid": ca.proxy(user, out / "valid.pem", seconds=2 * 3600),
        "short": ca.proxy(user, out / "short.pem", seconds=600),
        "expired": ca.proxy(user, out / "expired.pem", start=now - timedelta(hours=3), end=now - timedelta(hours=1)),
        "voms": ca.voms_proxy(user, ca.issue("voms", "voms.pylaw.test"), out / "voms.pem", "testvo",
                              hours=3, ac_hours=1),
    }
    # a proxy whose key block is replaced by a recognisable fake secret: the key is never read
    text = made["valid"].read_text()
    key = re.search(r"-----BEGIN (RSA )?PRIVATE KEY-----.*?-----END (RSA )?PRIVATE KEY-----", text, re.DOTALL)
    assert key, "arcproxy writes the proxy's key into the proxy file"
    marked = out / "marked.pem"
    marked.write_text(text.replace(key.group(0), f"-----BEGIN PRIVATE KEY-----\n{FAKE_SECRET}\n"
                                                 f"-----END PRIVATE KEY-----"))
    made["marked"] = marked
    return made


def proxy_env(path: Path, ca: TestCA) -> dict[str, str]:
    return {"X509_USER_PROXY": str(path), "X509_CERT_DIR": str(ca.certdir)}


def secret_lines(path: Path) -> list[str]:
    """The base64 lines of every private key in ``path``, and the fake secret."""
    blocks = re.findall(r"PRIVATE KEY-----\n(.*?)\n-----END", path.read_text(), re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if len(line) > 20] + [FAKE_SECRET]


def assert_no_secret(text: str, *paths: Path) -> None:
    for path in paths:
        for line in secret_lines(path):
            assert line not in text


# --- X.509 proxies -------------------------------------------------------------------


def test_valid_proxy_passes_with_its_identity_and_end(proxies, ca):
    info = require_credentials(HOUR, environ=proxy_env(proxies["valid"], ca))
    assert info.kind == "x509" and info.location == str(proxies["valid"])
    assert info.subject == "/DC=org/DC=pylaw-test/CN=test user"
    assert info.expires == certificate_end(proxies["valid"].read_text())
    assert 1.9 * HOUR < info.remaining() <= 2 * HOUR


def test_too_short_proxy_is_refused_saying_what_and_how_to_renew(proxies, ca):
    with pytest.raises(CredentialLifetimeError) as err:
        require_credentials(HOUR, environ=proxy_env(proxies["short"], ca))
    message = str(err.value)
    assert isinstance(err.value, PylawError)
    assert str(proxies["short"]) in message and "ends in" in message and "1 h 00 min" in message
    assert "voms-proxy-init" in message and "arcproxy" in message and "nothing was submitted" in message
    assert_no_secret(message, proxies["short"])


def test_expired_proxy_is_refused(proxies, ca):
    with pytest.raises(CredentialLifetimeError, match=r"expired (1 h 0\d|59) min"):
        require_credentials(60, environ=proxy_env(proxies["expired"], ca))


def test_the_shortest_certificate_of_the_chain_counts(ca, user, proxies, tmp_path):
    """arcproxy caps a proxy at its user certificate's end, so the chain is put together here."""
    short_cert, _ = ca.issue("short-lived", "test user", days=1)
    chain = tmp_path / "chain.pem"
    chain.write_text(ca.proxy(user, tmp_path / "p.pem", seconds=2 * 86400).read_text() + short_cert.read_text())
    info = inspect_credentials(environ=proxy_env(chain, ca))
    assert info.expires == certificate_end(short_cert.read_text())
    assert info.expires < certificate_end(chain.read_text()) - 86400 / 2


def test_missing_proxy_is_not_found(tmp_path, ca):
    with pytest.raises(CredentialNotFoundError) as err:
        require_credentials(HOUR, environ=proxy_env(tmp_path / "nope.pem", ca))
    assert isinstance(err.value, FileNotFoundError)
    assert "no X.509 proxy at" in str(err.value) and "voms-proxy-init" in str(err.value)


def test_default_location_is_x509up_of_the_uid(monkeypatch):
    monkeypatch.delenv("X509_USER_PROXY", raising=False)
    expected = f"/tmp/x509up_u{os.getuid()}"
    if os.path.exists(expected):  # someone's proxy on this machine: it is the one found
        assert inspect_credentials().location == expected
        return
    with pytest.raises(CredentialNotFoundError, match=re.escape(expected)):
        require_credentials(HOUR)


def test_not_a_proxy_is_refused_without_echoing_its_content(tmp_path, ca):
    for text in (f"{FAKE_SECRET}\n", f"-----BEGIN CERTIFICATE-----\n{FAKE_SECRET}\n-----END CERTIFICATE-----\n"):
        bad = tmp_path / "bad.pem"
        bad.write_text(text)
        with pytest.raises(CredentialError) as err:
            require_credentials(HOUR, environ=proxy_env(bad, ca))
        assert FAKE_SECRET not in str(err.value) and str(bad) in str(err.value)


def test_directory_instead_of_a_proxy(tmp_path, ca):
    with pytest.raises(CredentialError, match="is a directory"):
        require_credentials(HOUR, environ=proxy_env(tmp_path, ca))


# --- VOMS ----------------------------------------------------------------------------


def test_vo_from_the_attribute_certificate_and_its_shorter_end(proxies, ca, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # arcproxy writes ~/.arc/client.conf unless given a config
    env = proxy_env(proxies["voms"], ca)
    plain = require_credentials(2 * HOUR, environ=env)  # the proxy lives 3 h
    assert plain.vos == () and plain.remaining() > 2.9 * HOUR
    with_vo = inspect_credentials(vo="testvo", environ=env)
    assert with_vo.vos == ("testvo",)
    assert 0.9 * HOUR < with_vo.remaining() <= HOUR  # the AC's hour, not the proxy's three
    with pytest.raises(CredentialLifetimeError, match="the jobs need 2 h 00 min"):
        require_credentials(2 * HOUR, vo="testvo", environ=env)
    assert not (tmp_path / ".arc").exists()


def test_wrong_or_missing_vo_is_refused(proxies, ca):
    with pytest.raises(CredentialError, match=r"VOMS attributes of testvo, but .* needs VO 'cms'.*--voms cms"):
        require_credentials(60, vo="cms", environ=proxy_env(proxies["voms"], ca))
    with pytest.raises(CredentialError, match="carries no VOMS attributes"):
        require_credentials(60, vo="testvo", environ=proxy_env(proxies["valid"], ca))


def _path_with(tmp_path: Path, *tools: str) -> CommandRunner:
    """A runner whose PATH holds only the named tools (the real binaries, linked)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in tools:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return CommandRunner(env={"PATH": str(bin_dir)})


def test_voms_proxy_info_when_arcproxy_is_missing(proxies, ca, tmp_path):
    runner = _path_with(tmp_path, "openssl", "voms-proxy-info")
    info = inspect_credentials(vo="testvo", environ=proxy_env(proxies["voms"], ca), runner=runner)
    assert info.vos == ("testvo",) and 0.9 * HOUR < info.remaining() <= HOUR
    assert runner.calls.get("voms-proxy-info") == 2 and "arcproxy" in runner.calls  # tried first


def test_no_voms_reader_installed_says_so(proxies, ca, tmp_path):
    runner = _path_with(tmp_path, "openssl")
    with pytest.raises(CredentialError, match=r"neither arcproxy .* nor voms-proxy-info"):
        inspect_credentials(vo="testvo", environ=proxy_env(proxies["voms"], ca), runner=runner)


# --- WLCG tokens -----------------------------------------------------------------------


def jwt(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{FAKE_SECRET}"


def token_claims(lifetime: float, **extra) -> dict:
    return {"sub": "analyst-42", "iss": "https://iam.pylaw.test/", "exp": int(time.time() + lifetime),
            "secret_note": FAKE_SECRET, **extra}


def test_token_discovery_order(tmp_path):
    runtime = tmp_path / "run"
    runtime.mkdir()
    (runtime / f"bt_u{os.getuid()}").write_text(jwt(token_claims(3 * HOUR)) + "\n")
    (tmp_path / "file.jwt").write_text(jwt(token_claims(4 * HOUR)))
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    assert inspect_credentials("token", environ=env).location == str(runtime / f"bt_u{os.getuid()}")
    env["BEARER_TOKEN_FILE"] = str(tmp_path / "file.jwt")
    assert inspect_credentials("token", environ=env).location == str(tmp_path / "file.jwt")
    env["BEARER_TOKEN"] = jwt(token_claims(5 * HOUR))
    info = inspect_credentials("token", environ=env)
    assert info.location == "$BEARER_TOKEN" and info.subject == "analyst-42"
    assert 4.9 * HOUR < info.remaining() <= 5 * HOUR


def test_expired_and_malformed_tokens_are_refused_without_their_content(tmp_path):
    cases = [(jwt(token_claims(-60)), CredentialLifetimeError, "expired"),
             (jwt(token_claims(600)), CredentialLifetimeError, "ends in 10 min"),
             (f"{FAKE_SECRET}.{FAKE_SECRET}", CredentialError, "not a JSON Web Token"),
             (jwt({"sub": "x", "note": FAKE_SECRET}), CredentialError, "no numeric 'exp'")]
    for token, error, text in cases:
        with pytest.raises(error) as err:
            require_credentials(HOUR, kind="token", environ={"BEARER_TOKEN": token})
        assert text in str(err.value) and FAKE_SECRET not in str(err.value)
        assert "oidc-token" in str(err.value) or "wlcg" in str(err.value)


def test_token_vo_from_wlcg_groups(tmp_path):
    env = {"BEARER_TOKEN": jwt(token_claims(2 * HOUR, **{"wlcg.groups": ["/testvo", "/testvo/analysis"]}))}
    assert require_credentials(HOUR, kind="token", vo="testvo", environ=env).vos == ("testvo",)
    with pytest.raises(CredentialError, match="is for testvo, not VO 'cms'"):
        require_credentials(HOUR, kind="token", vo="cms", environ=env)
    with pytest.raises(CredentialError, match=r"no 'wlcg\.groups' claim"):
        require_credentials(HOUR, kind="token", vo="cms", environ={"BEARER_TOKEN": jwt(token_claims(2 * HOUR))})


def test_missing_token_file():
    with pytest.raises(CredentialNotFoundError, match="no WLCG token at /nonexistent/bt"):
        require_credentials(HOUR, kind="token", environ={"BEARER_TOKEN_FILE": "/nonexistent/bt"})


# --- watching ------------------------------------------------------------------------


def test_watch_warns_once_per_threshold(proxies, ca):
    info = inspect_credentials(environ=proxy_env(proxies["valid"], ca))
    watch = CredentialWatch(info, warn_below=HOUR)
    assert watch.thresholds == [HOUR, HOUR / 2, HOUR / 4, 0.0]
    at = info.expires
    seen = [watch.check(now=at - left) for left in (2 * HOUR, HOUR + 5, HOUR - 5, HOUR - 50, 1700, 1600, 100, -5,
                                                      -500)]
    warnings = [(i, text) for i, text in enumerate(seen) if text]
    assert [i for i, _ in warnings] == [2, 4, 6, 7]
    assert "ends in 1 h 00 min" in warnings[0][1] and "expired 5 s ago" in warnings[3][1]
    assert all(str(proxies["valid"]) in text and "arcproxy" in text for _, text in warnings)


def test_watch_jumps_over_thresholds_crossed_between_checks(proxies, ca):
    info = inspect_credentials(environ=proxy_env(proxies["valid"], ca))
    watch = CredentialWatch(info, warn_below=HOUR)
    assert watch.check(now=info.expires - 100)  # one warning for all three thresholds
    assert watch.check(now=info.expires - 50) is None


def test_watch_rereads_a_renewed_proxy(proxies, ca, user, tmp_path):
    path = tmp_path / "x509up"
    shutil.copy(proxies["short"], path)
    watch = CredentialWatch(inspect_credentials(environ=proxy_env(path, ca)), warn_below=HOUR,
                            note="the CE keeps its own delegated copy")
    first = watch.check()
    assert first and "ends in" in first and "delegated copy" in first
    assert watch.check() is None
    ca.proxy(user, path, seconds=2 * 3600)
    os.utime(path, (time.time() + 5, time.time() + 5))  # a different mtime even within the same second
    assert watch.check() is None
    assert watch.info.remaining() > 1.9 * HOUR and watch.warned == set()


def test_no_secret_in_any_message_or_log(proxies, ca, caplog):
    caplog.set_level(logging.DEBUG)
    messages = []
    marked = proxies["marked"]
    info = require_credentials(HOUR, environ=proxy_env(marked, ca))  # the fake key block is not looked at
    messages.append(repr(info))
    messages.append(CredentialWatch(info, warn_below=3 * HOUR).check() or "")
    for path, vo in ((marked, "cms"), (proxies["short"], ""), (proxies["voms"], "other")):
        with pytest.raises(CredentialError) as err:
            require_credentials(HOUR, vo=vo, environ=proxy_env(path, ca))
        messages.append(str(err.value))
    text = "\n".join(messages) + caplog.text
    assert "ends in" in text and "carries no VOMS" in text  # the messages were made
    assert_no_secret(text, marked, proxies["valid"], proxies["short"], proxies["voms"])
