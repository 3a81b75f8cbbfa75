"""Grid credentials: checked before anything is submitted, watched while the jobs run.

A grid job authenticates with the submitter's X.509 proxy (or a WLCG bearer token) for
its whole life: the CE delegates it to the job, and the job's own transfers use it. A
proxy that ends before the jobs do makes them fail hours later, far from the cause, so
:func:`require_credentials` refuses to submit unless the credential outlives the jobs'
walltime plus a margin, and says how to renew it. :class:`CredentialWatch` is asked by
the poll loop and warns, once per threshold, when the remaining lifetime runs low.

Where pylaw looks (the grid tools' own conventions):

- X.509: ``$X509_USER_PROXY``, else ``/tmp/x509up_u<uid>``. Every certificate in the
  file counts: the chain (proxy, user certificate, ...) lives as long as its shortest
  member. The certificates are read with ``openssl x509`` (through
  :class:`~pylaw.job.command.CommandRunner`); the private key block is never read, passed
  on or printed. VOMS attributes (the VO of the attribute certificate and its end) are
  read with ``arcproxy`` or, without it, ``voms-proxy-info``: pylaw reads what the proxy
  claims and does not verify the attribute certificate's signature (the site does that,
  against its ``vomsdir``).
- Tokens (WLCG Bearer Token Discovery): ``$BEARER_TOKEN``, ``$BEARER_TOKEN_FILE``,
  ``$XDG_RUNTIME_DIR/bt_u<uid>``, ``/tmp/bt_u<uid>``. The JWT's ``exp`` claim is read
  without verifying the signature (pylaw holds no issuer keys; the CE verifies); the VO
  is checked against the ``wlcg.groups`` claim.

No message, log line or object here holds a credential's content: only where it was
found, whose it is (subject), and when it ends.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from pylaw.errors import CommandError, ConfigError, CredentialError, CredentialLifetimeError, CredentialNotFoundError
from pylaw.job.command import CommandRunner

logger = logging.getLogger("pylaw.job.credentials")

KINDS = ("x509", "token")

#: a PEM certificate block; other blocks (the private key) are never looked at
_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n.*?-----END CERTIFICATE-----", re.DOTALL)
#: the proxy part of a subject: RFC 3820 proxies add /CN=<serial>, legacy ones /CN=proxy or /CN=limited proxy
_PROXY_CN = re.compile(r"/CN=(\d+|proxy|limited proxy)$")

OPENSSL_ARGV = ("openssl", "x509", "-noout", "-subject", "-enddate", "-nameopt", "compat")
#: VOMS readers in order of preference: (tool, argv for the VOs, argv for the AC ends, unit of the ends)
VOMS_READERS = (
    ("arcproxy", ("-i", "vomsVO"), ("-i", "vomsACvalidityEnd"), "epoch"),
    ("voms-proxy-info", ("-vo",), ("-actimeleft",), "left"),
)


@dataclass(frozen=True)
class CredentialInfo:
    """What a credential is, never what it holds.

    ``expires`` is the earliest end of everything the jobs need (every certificate of
    the chain, the VOMS attribute certificate when a VO was asked for). ``vos`` is filled
    when a VO was checked. ``mtime`` lets :class:`CredentialWatch` notice a renewed file.
    """

    kind: str
    location: str
    subject: str
    expires: float
    vos: tuple[str, ...] = ()
    vo: str = ""
    mtime: float | None = None

    def remaining(self, now: float | None = None) -> float:
        return self.expires - (time.time() if now is None else now)

    def describe(self) -> str:
        what = "X.509 proxy" if self.kind == "x509" else "WLCG token"
        owner = f" of {self.subject}" if self.subject else ""
        return f"the {what} {self.location}{owner}"


def require_credentials(min_lifetime: float, *, vo: str = "", kind: str = "x509",
                        runner: CommandRunner | None = None, environ: Mapping[str, str] | None = None,
                        now: float | None = None) -> CredentialInfo:
    """The credential the grid tools would use, checked to live at least ``min_lifetime`` seconds more.

    ``min_lifetime`` is the jobs' walltime plus a margin; ``vo`` the VO the CE needs
    (checked only when given). Raises :class:`~pylaw.errors.CredentialNotFoundError`,
    :class:`~pylaw.errors.CredentialLifetimeError` or :class:`~pylaw.errors.CredentialError`,
    each saying what was found and how to renew.
    """
    info = inspect_credentials(kind, vo=vo, runner=runner, environ=environ)
    left = info.remaining(now)
    if left < min_lifetime:
        state = f"expired {_span(-left)} ago" if left <= 0 else f"ends in {_span(left)}"
        raise CredentialLifetimeError(
            f"{info.describe()} {state} (at {_utc(info.expires)}), but the jobs need {_span(min_lifetime)} "
            f"(walltime plus margin); nothing was submitted. {renew_hint(kind, vo, min_lifetime)}")
    return info


def inspect_credentials(kind: str = "x509", *, vo: str = "", runner: CommandRunner | None = None,
                        environ: Mapping[str, str] | None = None) -> CredentialInfo:
    """Find and read the credential of ``kind``; checks all but its lifetime."""
    env = os.environ if environ is None else environ
    runner = runner or CommandRunner(timeout=30)
    if kind == "x509":
        return _inspect_proxy(_proxy_path(env), vo, runner)
    if kind == "token":
        return _inspect_token(env, vo)
    raise ConfigError(f"unknown credential kind {kind!r}; give one of: {', '.join(KINDS)}")


def renew_hint(kind: str, vo: str, lifetime: float) -> str:
    """How to get a credential of ``kind`` for ``vo`` living ``lifetime`` seconds."""
    hours = max(1, int(lifetime // 3600) + 1)
    if kind == "token":
        return (f"Get a fresh token, e.g. `oidc-token --time={int(lifetime + 0.5)} ACCOUNT > \"$BEARER_TOKEN_FILE\"` "
                f"(oidc-agent) or `htgettoken`, and point BEARER_TOKEN_FILE at it")
    voms = f" --voms {vo}" if vo else ""
    arc_voms = f" -S {vo}" if vo else ""
    return (f"Renew it with `voms-proxy-init{voms} --valid {hours}:00` or "
            f"`arcproxy{arc_voms} -c validityPeriod={hours}h` (VOMS servers may cap the attribute lifetime)")


# --- X.509 ----------------------------------------------------------------------------


def _proxy_path(env: Mapping[str, str]) -> str:
    return env.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"


def _read_credential_file(path: str, what: str, hint: str) -> tuple[str, float]:
    """The file's text and mtime; a missing or unreadable file is an error naming only its path."""
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read(), os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        raise CredentialNotFoundError(f"no {what} at {path}: grid jobs need one. {hint}") from None
    except IsADirectoryError:
        raise CredentialError(f"the {what} path {path} is a directory, not a file. {hint}") from None
    except PermissionError:
        raise CredentialError(f"the {what} {path} exists but cannot be read by uid {os.getuid()} "
                              f"(permissions); fix its owner, or renew it as this user. {hint}") from None


def _inspect_proxy(path: str, vo: str, runner: CommandRunner) -> CredentialInfo:
    hint = renew_hint("x509", vo, 12 * 3600)
    text, mtime = _read_credential_file(path, "X.509 proxy", hint)
    blocks = _CERTIFICATE.findall(text)
    if not blocks:
        raise CredentialError(f"the X.509 proxy {path} holds no PEM certificate; it is not a proxy file "
                              f"(or it is truncated). {hint}")
    subjects, ends = [], []
    for number, block in enumerate(blocks, 1):
        subject, end = _certificate_dates(runner, block, f"certificate {number} of {len(blocks)} in {path}", hint)
        subjects.append(subject)
        ends.append(end)
    identity = subjects[0]
    while _PROXY_CN.search(identity):
        identity = _PROXY_CN.sub("", identity)
    info = CredentialInfo("x509", path, identity, min(ends), mtime=mtime, vo=vo)
    return _check_voms(info, runner) if vo else info


def _certificate_dates(runner: CommandRunner, block: str, where: str, hint: str) -> tuple[str, float]:
    """(subject, notAfter as epoch) of one PEM certificate, read by ``openssl x509`` from stdin."""
    result = runner.run(list(OPENSSL_ARGV), check=False, input=block + "\n")
    fields = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    if result.returncode != 0 or "notAfter" not in fields:
        # openssl's own diagnostics are left out on purpose: the message names only the file
        raise CredentialError(f"{where} is not a readable X.509 certificate (openssl x509 exited with "
                              f"{result.returncode}); the file is damaged. {hint}")
    try:
        end = datetime.strptime(" ".join(fields["notAfter"].split()), "%b %d %H:%M:%S %Y %Z")
    except ValueError:
        raise CredentialError(f"{where}: openssl printed an end date pylaw cannot read "
                              f"({fields['notAfter']!r})") from None
    return fields.get("subject", "").strip(), end.replace(tzinfo=timezone.utc).timestamp()


def _check_voms(info: CredentialInfo, runner: CommandRunner) -> CredentialInfo:
    """``info`` with the proxy's VOs and the AC's end; an error unless ``info.vo`` is among them."""
    vo, hint = info.vo, renew_hint("x509", info.vo, 12 * 3600)
    for tool, vo_args, end_args, unit in VOMS_READERS:
        try:
            vos = _tool_lines(runner, tool, info.location, vo_args)
            ends = _tool_lines(runner, tool, info.location, end_args)
        except FileNotFoundError:
            continue
        if vo not in vos:
            found = f"VOMS attributes of {', '.join(vos)}" if vos else "no VOMS attributes"
            raise CredentialError(f"{info.describe()} carries {found}, but the computing element needs VO "
                                  f"{vo!r} (read with {tool}). {hint}")
        numbers = [float(line) for line in ends if re.fullmatch(r"\d+(\.\d+)?", line)]
        if numbers:
            end = min(numbers) if unit == "epoch" else time.time() + min(numbers)
            info = replace(info, expires=min(info.expires, end))
        return replace(info, vos=tuple(vos))
    raise CredentialError(
        f"cannot check the VOMS attributes (VO {vo!r}) of {info.describe()}: neither arcproxy "
        f"(nordugrid-arc-client) nor voms-proxy-info (voms-clients) is installed here; install one, or "
        f"drop 'vo' from the computing element's section to submit without the check")


def _tool_lines(runner: CommandRunner, tool: str, path: str, args: tuple[str, ...]) -> list[str]:
    """Non-empty output lines of a VOMS reader; FileNotFoundError when the tool is not installed."""
    with tempfile.NamedTemporaryFile("w", prefix="pylaw-arcproxy-", suffix=".conf") as conf:
        # arcproxy writes ~/.arc/client.conf unless given a config (an empty one: /dev/null is refused)
        conf.write("[common]\n")
        conf.flush()
        argv = [tool, "-z", conf.name, "-P", path, *args] if tool == "arcproxy" else [tool, "-file", path, *args]
        try:
            result = runner.run(argv, check=False)
        except CommandError as exc:
            if isinstance(exc.__cause__, FileNotFoundError):  # not installed: try the next reader
                raise FileNotFoundError(tool) from None
            raise CredentialError(f"{tool} could not read {path}: {exc}") from None
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


# --- WLCG tokens ----------------------------------------------------------------------


def _inspect_token(env: Mapping[str, str], vo: str) -> CredentialInfo:
    hint = renew_hint("token", vo, 12 * 3600)
    mtime: float | None = None
    if env.get("BEARER_TOKEN", "").strip():
        location, token = "$BEARER_TOKEN", env["BEARER_TOKEN"].strip()
    else:
        if env.get("BEARER_TOKEN_FILE"):
            location = env["BEARER_TOKEN_FILE"]
        elif env.get("XDG_RUNTIME_DIR") and os.path.exists(f"{env['XDG_RUNTIME_DIR']}/bt_u{os.getuid()}"):
            location = f"{env['XDG_RUNTIME_DIR']}/bt_u{os.getuid()}"
        else:
            location = f"/tmp/bt_u{os.getuid()}"
        text, mtime = _read_credential_file(location, "WLCG token", hint)
        token = text.strip()
    claims = _jwt_claims(token, location, hint)
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise CredentialError(f"the WLCG token {location} has no numeric 'exp' claim; pylaw cannot tell "
                              f"when it ends. {hint}")
    subject = str(claims.get("sub", ""))
    info = CredentialInfo("token", location, subject, float(exp), vo=vo, mtime=mtime)
    return _check_token_vo(info, claims, hint) if vo else info


def _jwt_claims(token: str, location: str, hint: str) -> dict:
    """The JWT's payload, decoded but not verified (no issuer keys here; the CE verifies)."""
    parts = token.split(".")
    try:
        if len(parts) != 3:
            raise ValueError
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
        if not isinstance(claims, dict):
            raise ValueError
        return claims
    except (ValueError, UnicodeError, binascii.Error):
        raise CredentialError(f"the WLCG token {location} is not a JSON Web Token (header.payload.signature, "
                              f"base64url); pylaw cannot read its lifetime. {hint}") from None


def _check_token_vo(info: CredentialInfo, claims: dict, hint: str) -> CredentialInfo:
    groups = claims.get("wlcg.groups")
    if isinstance(groups, str):
        groups = groups.split()
    if not isinstance(groups, list):
        raise CredentialError(f"{info.describe()} has no 'wlcg.groups' claim, so pylaw cannot check it is for VO "
                              f"{info.vo!r}; ask the token issuer for the groups scope (e.g. `wlcg.groups`), or "
                              f"drop 'vo' from the computing element's section if the issuer alone names the VO")
    vos = tuple(dict.fromkeys(str(g).strip("/").split("/")[0] for g in groups if str(g).strip("/")))
    if info.vo not in vos:
        raise CredentialError(f"{info.describe()} is for {', '.join(vos) or 'no group'}, not VO {info.vo!r}. {hint}")
    return replace(info, vos=vos)


# --- watching while jobs run ----------------------------------------------------------


class CredentialWatch:
    """Warns, once per threshold, when a credential's remaining lifetime runs low.

    Thresholds: ``warn_below``, then halving down to ten minutes, then "expired". A
    renewed file (its mtime changes) is re-read; if the new credential lives longer than
    ``warn_below`` the thresholds start over. ``note`` is appended to each warning (e.g.
    that a CE's delegated copy needs renewing too).
    """

    def __init__(self, info: CredentialInfo, warn_below: float, *, note: str = "",
                 runner: CommandRunner | None = None) -> None:
        self.info, self.warn_below, self.note = info, float(warn_below), note
        self.runner = runner
        thresholds, step = [], self.warn_below
        while step >= 600:
            thresholds.append(step)
            step /= 2
        self.thresholds = [*thresholds, 0.0]
        self.warned: set[float] = set()

    def check(self, now: float | None = None) -> str | None:
        """A warning when a new threshold was crossed since the last call (also logged), else None."""
        self._reread_if_renewed(now)
        left = self.info.remaining(now)
        crossed = [t for t in self.thresholds if left <= t and t not in self.warned]
        if not crossed:
            return None
        self.warned.update(t for t in self.thresholds if left <= t)
        state = f"expired {_span(-left)} ago" if left <= 0 else f"ends in {_span(left)}"
        message = (f"{self.info.describe()} {state} (at {_utc(self.info.expires)}); jobs still running or "
                   f"submitted after that fail. {renew_hint(self.info.kind, self.info.vo, self.warn_below * 2)}"
                   + (f"; {self.note}" if self.note else ""))
        logger.warning("%s", message)
        return message

    def _reread_if_renewed(self, now: float | None) -> None:
        if self.info.mtime is None:
            return
        try:
            mtime = os.stat(self.info.location).st_mtime
        except OSError:
            return
        if mtime == self.info.mtime:
            return
        try:
            fresh = inspect_credentials(self.info.kind, vo=self.info.vo, runner=self.runner,
                                        environ={"X509_USER_PROXY": self.info.location,
                                                 "BEARER_TOKEN_FILE": self.info.location})
        except CredentialError:
            return  # caught mid-rewrite, or replaced by something unusable: keep warning about the old one
        self.info = fresh
        if fresh.remaining(now) > self.warn_below:
            self.warned.clear()
            logger.info("%s was renewed: it now ends at %s", fresh.describe(), _utc(fresh.expires))


def _span(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 120:
        return f"{seconds} s"
    hours, minutes = divmod((seconds + 30) // 60, 60)  # to the nearest minute
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
