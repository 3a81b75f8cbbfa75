"""TEST DOUBLE of a CREAM CE and its command line: ``python cream.py COMMAND ARGS...``.

Not CREAM. It keeps a CE's state in ``$CREAM_DOUBLE_STATE`` (delegations, jobs with their
sandboxes, a ledger of every call), runs each job as a local process in a copy of its
input sandbox with an empty environment, and answers in the format of the real
cream-cli (see ``tests/job/data/glite/``). It imports nothing of pylaw: a CE knows none.

What it checks like a CE: a readable, unexpired proxy (``X509_USER_PROXY``, else
``/tmp/x509up_u<uid>``; the expiry read with ``openssl x509 -enddate``) for every command,
a known and unexpired delegation for ``-D``, a parseable JDL whose input sandbox files
exist, id files starting with ``##CREAMJOBS##``, states in which cancel/purge/output
are allowed (per the man pages).
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

HEADER = "##CREAMJOBS##"
TERMINAL = ("DONE-OK", "DONE-FAILED", "CANCELLED", "ABORTED")
CANCELLABLE = ("PENDING", "IDLE", "RUNNING", "REALLY-RUNNING", "HELD")
PURGEABLE = ("REGISTERED", "DONE-OK", "DONE-FAILED", "ABORTED", "CANCELLED")


class RefusedError(Exception):
    """A request the CE (or the CLI) refuses: printed, exit code 1."""


# -- state -------------------------------------------------------------------------------

def root() -> str:
    path = os.environ["CREAM_DOUBLE_STATE"]
    os.makedirs(os.path.join(path, "jobs"), exist_ok=True)
    return path


@contextlib.contextmanager
def locked() -> Iterator[None]:
    with open(os.path.join(root(), "lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def load(name: str, default: Any) -> Any:
    try:
        with open(os.path.join(root(), name)) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def save(name: str, data: Any) -> None:
    path = os.path.join(root(), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(f"{path}.tmp{os.getpid()}", "w") as f:
        json.dump(data, f, indent=1)
    os.replace(f"{path}.tmp{os.getpid()}", path)


def job_file(number: int) -> str:
    return f"jobs/{number}/job.json"


def jobs_by_id() -> dict[str, int]:
    return load("ids.json", {})


def stamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + f",{int(now * 1000) % 1000:03d}"


def ledger(command: str, argv: list[str]) -> None:
    with open(os.path.join(root(), "calls.jsonl"), "a") as f:
        f.write(json.dumps({"command": command, "argv": argv, "time": time.time()}) + "\n")


# -- the proxy ------------------------------------------------------------------------

def proxy_expiry() -> float:
    """The proxy's notAfter (epoch); a missing, unreadable or expired proxy is refused."""
    path = os.environ.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise RefusedError(f"{stamp()} FATAL - Proxy file [{path}] not found or not readable")
    result = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", path], capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout.startswith("notAfter="):
        raise RefusedError(f"{stamp()} FATAL - Proxy file [{path}] is not a valid proxy certificate")
    expiry = calendar.timegm(time.strptime(result.stdout.strip()[len("notAfter="):], "%b %d %H:%M:%S %Y GMT"))
    if expiry <= time.time():
        raise RefusedError(f"{stamp()} FATAL - The proxy [{path}] has expired: no proxy time left")
    return expiry


# -- JDL ------------------------------------------------------------------------------

def tokens(text: str) -> Iterator[str]:
    """ClassAd tokens: strings (with their quotes, escapes resolved), punctuation, words; comments dropped."""
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("//", i) or c == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif c == '"':
            value, i = [], i + 1
            while i < len(text) and text[i] != '"':
                if text[i] == "\\" and i + 1 < len(text):
                    i += 1
                if text[i] in "\n\r":
                    raise RefusedError("JDL parsing error: line break in a string")
                value.append(text[i])
                i += 1
            if i >= len(text):
                raise RefusedError("JDL parsing error: unterminated string")
            yield '"' + "".join(value)
            i += 1
        elif c in "[]{}=;,":
            yield c
            i += 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in '[]{}=;,"':
                i += 1
            yield text[start:i]


def parse_jdl(text: str) -> dict[str, Any]:
    """``[ Name = value; ... ]`` -> {lower-case name: str | list[str]}."""
    items = list(tokens(text))
    if not items or items[0] != "[" or items[-1] != "]":
        raise RefusedError("JDL parsing error: not a [ ... ] ClassAd")
    attributes: dict[str, Any] = {}
    i = 1
    while i < len(items) - 1:
        name = items[i]
        if i + 1 >= len(items) or items[i + 1] != "=":
            raise RefusedError(f"JDL parsing error near {name!r}")
        i += 2
        if items[i] == "{":
            values = []
            i += 1
            while items[i] != "}":
                if items[i] != ",":
                    if not items[i].startswith('"'):
                        raise RefusedError(f"JDL parsing error: {name} lists a non-string")
                    values.append(items[i][1:])
                i += 1
            attributes[name.lower()] = values
            i += 1
        else:
            parts = []
            while items[i] not in (";", "]"):
                parts.append(items[i][1:] if items[i].startswith('"') else items[i])
                i += 1
            attributes[name.lower()] = " ".join(parts)
        if items[i] == ";":
            i += 1
    return attributes


# -- commands -------------------------------------------------------------------------

def options(argv: list[str], flags: str, valued: str) -> tuple[dict[str, str], list[str]]:
    found: dict[str, str] = {}
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg.startswith("-") and len(arg) == 2 and arg[1] in flags:
            found[arg[1]] = ""
        elif arg.startswith("-") and len(arg) == 2 and arg[1] in valued:
            found[arg[1]] = next(it)
        elif arg == "--dir":
            found["dir"] = next(it)
        else:
            rest.append(arg)
    return found, rest


def delegate_proxy(argv: list[str]) -> int:
    opts, rest = options(argv, "dN", "e")
    if "e" not in opts or len(rest) != 1:
        raise RefusedError("glite-ce-delegate-proxy: the endpoint (-e) and a delegation id are required")
    expiry = proxy_expiry()
    endpoint = opts["e"] if ":" in opts["e"] else f"{opts['e']}:8443"
    with locked():
        delegations = load("delegations.json", {})
        if rest[0] in delegations:
            raise RefusedError(f"{stamp()} ERROR - Delegation ID '{rest[0]}' already exists")
        delegations[rest[0]] = {"endpoint": endpoint, "expires": expiry, "created": time.time()}
        save("delegations.json", delegations)
    print(f"{stamp()} NOTICE - Proxy with delegation id [{rest[0]}] successfully delegated to endpoint "
          f"[https://{endpoint}//ce-cream/services/CREAMDelegation]")
    return 0


def job_submit(argv: list[str]) -> int:
    opts, files = options(argv, "adnN", "Dro")
    proxy_expiry()
    if "r" not in opts or "/" not in opts["r"] or ":" not in opts["r"].split("/")[0]:
        raise RefusedError("glite-ce-job-submit: -r host:port/queue is required")
    if "D" in opts:
        delegation = load("delegations.json", {}).get(opts["D"])
        if delegation is None:
            raise RefusedError(f"MethodName=[jobRegister] ErrorCode=[0] Description=[delegation id "
                          f"[{opts['D']}] not found] FaultCause=[DelegationException] Timestamp=[{stamp()}]")
        if delegation["expires"] <= time.time():
            raise RefusedError(f"MethodName=[jobRegister] ErrorCode=[0] Description=[the delegation [{opts['D']}] "
                          f"has expired] FaultCause=[DelegationException] Timestamp=[{stamp()}]")
    elif "a" not in opts:
        raise RefusedError("glite-ce-job-submit: give -a (automatic delegation) or -D <delegation id>")
    if "o" in opts and os.path.exists(opts["o"]):
        with open(opts["o"]) as f:
            if f.readline().strip() != HEADER:
                raise RefusedError(f"glite-ce-job-submit: {opts['o']} exists and is not a job id file")
    ids = [register(path, opts) for path in files]
    if "o" in opts:
        with open(opts["o"], "a") as f:
            if f.tell() == 0:
                f.write(HEADER + "\n")
            f.writelines(f"{job_id}\n" for job_id in ids)
    for job_id in ids:
        print(job_id)
    return 0


def register(path: str, opts: dict[str, str]) -> str:
    with open(path) as f:
        attributes = parse_jdl(f.read())
    if not attributes.get("executable"):
        raise RefusedError(f"JDL File=[{path}]: Executable is mandatory")
    with locked():
        number = load("next.json", 0)
        save("next.json", number + 1)
    sandbox = os.path.join(root(), "jobs", str(number), "sandbox")
    os.makedirs(sandbox)
    for name in attributes.get("inputsandbox", []):  # "uploaded" to the CE: the job sees only these copies
        source = name if os.path.isabs(name) else os.path.join(os.getcwd(), name)
        if not os.path.isfile(source):
            raise RefusedError(f"{stamp()} ERROR - InputSandbox file [{source}] not found")
        shutil.copy2(source, os.path.join(sandbox, os.path.basename(name)))
    host = opts["r"].split("/")[0]
    job_id = f"https://{host}/DOUBLE_{secrets.token_hex(6)}"
    job = {"id": job_id, "number": number, "jdl": os.path.abspath(path), "delegation": opts.get("D", "auto"),
           "resource": opts["r"], "attributes": attributes, "status": "REGISTERED", "history": [],
           "exit_code": None, "reason": "", "pgid": None, "purged": False, "submitted": time.time()}
    with locked():
        set_status(job, "REGISTERED")
        ids = jobs_by_id()
        ids[job_id] = number
        save("ids.json", ids)
    runner = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_run", str(number)],
                              start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, close_fds=True, env=dict(os.environ))
    with locked():
        job = load(job_file(number), job)
        job["pgid"] = runner.pid
        save(job_file(number), job)
    return job_id


def set_status(job: dict[str, Any], status: str, **fields: Any) -> None:
    """Change and save a job's state (the caller holds the lock)."""
    job.update(fields, status=status)
    job["history"].append([status, time.time()])
    save(job_file(job["number"]), job)


def run_job(number: int) -> int:
    """The CE's side of one job: pending for a moment, then the executable in its sandbox."""
    delay = float(os.environ.get("CREAM_DOUBLE_DELAY", "0.2"))
    for status in ("PENDING", "IDLE"):
        time.sleep(delay)
        with locked():
            job = load(job_file(number), None)
            if job["status"] in TERMINAL:
                return 0
            set_status(job, status)
    attributes = job["attributes"]
    sandbox = os.path.join(root(), "jobs", str(number), "sandbox")
    executable = os.path.join(sandbox, os.path.basename(attributes["executable"]))
    os.chmod(executable, 0o755)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": sandbox, "TMPDIR": sandbox, "CREAM_JOBID": job["id"],
           "LANG": "C.UTF-8"}
    out = open(os.path.join(sandbox, attributes.get("stdoutput", "stdout")), "wb")  # noqa: SIM115
    err = open(os.path.join(sandbox, attributes.get("stderror", "stderr")), "wb")  # noqa: SIM115
    with locked():
        job = load(job_file(number), None)
        if job["status"] in TERMINAL:
            return 0
        process = subprocess.Popen([executable, *shlex.split(attributes.get("arguments", ""))], cwd=sandbox,
                                   env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        set_status(job, "RUNNING")
        set_status(job, "REALLY-RUNNING", worker_pid=process.pid)
    rc = process.wait()
    missing = [name for name in attributes.get("outputsandbox", [])
               if not os.path.isfile(os.path.join(sandbox, name))]
    with locked():
        job = load(job_file(number), None)
        if job["status"] in TERMINAL:  # cancelled meanwhile
            return 0
        if missing:
            set_status(job, "DONE-FAILED", exit_code=rc, reason=f"Cannot move OSB: {', '.join(missing)} missing")
        elif rc == 0:
            set_status(job, "DONE-OK", exit_code=0)
        else:
            set_status(job, "DONE-FAILED", exit_code=rc, reason=f"reason={rc}")
    return 0


def requested_ids(argv: list[str], flags: str, valued: str = "") -> tuple[dict[str, str], list[str]]:
    opts, ids = options(argv, flags, "iL" + valued)
    if "i" in opts:
        with open(opts["i"]) as f:
            lines = [line.strip() for line in f]
        if not lines or lines[0] != HEADER:
            raise RefusedError(f"{opts['i']}: not a job id file (its first line must be {HEADER})")
        ids += [line for line in lines[1:] if line]
    return opts, ids


def fault(job_id: str, method: str, description: str) -> str:
    return (f"{stamp()} WARN - JobID [{job_id}]:  MethodName=[{method}] Timestamp=[{stamp()}] ErrorCode=[0] "
            f"Description=[{description}] FaultCause=[N/A]")


def known(job_id: str) -> dict[str, Any] | None:
    number = jobs_by_id().get(job_id)
    job = load(job_file(number), None) if number is not None else None
    return None if job is None or job["purged"] else job


def job_status(argv: list[str]) -> int:
    opts, ids = requested_ids(argv, "nNd")
    proxy_expiry()
    level = int(opts.get("L", "0"))
    errors = 0
    for job_id in ids:
        job = known(job_id)
        if job is None:
            print(fault(job_id, "jobInfo", "job not found"), file=sys.stderr)
            errors += 1
            continue
        key = "Current Status " if level else "Status        "  # the real CLI's widths
        lines = ["", f"******  JobID=[{job_id}]", f"\t{key}= [{job['status']}]"]
        if job["status"] in TERMINAL:
            code = job["exit_code"]
            lines.append(f"\tExitCode      = [{'' if code is None else code}]")
        if job["reason"]:
            lines.append(f"\tFailureReason = [{job['reason']}]")
        if level:
            lines += ["", "\tJob status changes:", "\t-------------------"]
            lines += [f"\tStatus         = [{status}] - [{time.ctime(at)}] ({int(at)})"
                      for status, at in job["history"]]
        print("\n".join(lines))
    return 1 if errors else 0


def job_cancel(argv: list[str]) -> int:
    _, ids = requested_ids(argv, "nNd")
    proxy_expiry()
    for job_id in ids:
        with locked():
            job = known(job_id)
            if job is None or job["status"] not in CANCELLABLE:
                print(fault(job_id, "jobCancel", "job not found" if job is None else
                            f"the job status [{job['status']}] does not allow the cancel"))
                continue
            set_status(job, "CANCELLED", reason="Cancelled by user")
        kill(job)
    return 0  # like the real CLI: per-job failures are printed, the exit code stays 0


def kill(job: dict[str, Any]) -> None:
    """SIGTERM to the job's process group, SIGKILL after a grace period."""
    if not job.get("pgid"):
        return
    for sig, wait in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(job["pgid"], sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(job["pgid"], 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def job_purge(argv: list[str]) -> int:
    _, ids = requested_ids(argv, "nNd")
    proxy_expiry()
    for job_id in ids:
        with locked():
            job = known(job_id)
            if job is None or job["status"] not in PURGEABLE:
                print(fault(job_id, "jobPurge", "job not found" if job is None else
                            f"the job status [{job['status']}] does not allow the purge"))
                continue
            shutil.rmtree(os.path.join(root(), "jobs", str(job["number"]), "sandbox"), ignore_errors=True)
            job["purged"] = True
            job["purged_at"] = time.time()
            save(job_file(job["number"]), job)
    return 0


def job_output(argv: list[str]) -> int:
    opts, ids = requested_ids(argv, "nNd")
    proxy_expiry()
    target = opts.get("dir", ".")
    for job_id in ids:
        job = known(job_id)
        if job is None or job["status"] not in ("DONE-OK", "DONE-FAILED"):
            print(fault(job_id, "getOutputSandbox", "job not found" if job is None else
                        f"the job status [{job['status']}] has no output sandbox yet"), file=sys.stderr)
            continue
        host, _, rest = job_id[len("https://"):].partition("/")
        directory = os.path.join(target, f"{host.replace(':', '_')}_{rest.replace('/', '_')}")
        os.makedirs(directory, exist_ok=True)
        sandbox = os.path.join(root(), "jobs", str(job["number"]), "sandbox")
        for name in job["attributes"].get("outputsandbox", []):
            if os.path.isfile(os.path.join(sandbox, name)):
                shutil.copy2(os.path.join(sandbox, name), os.path.join(directory, name))
        print(f"{stamp()} INFO - For JobID [{job_id}] output will be stored in the dir {directory}")
    return 0


COMMANDS = {"delegate-proxy": delegate_proxy, "job-submit": job_submit, "job-status": job_status,
            "job-cancel": job_cancel, "job-purge": job_purge, "job-output": job_output}


def main(argv: list[str]) -> int:
    if argv[0] == "_run":
        return run_job(int(argv[1]))
    ledger(argv[0], argv[1:])
    try:
        return COMMANDS[argv[0]](argv[1:])
    except RefusedError as exc:
        print(str(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
