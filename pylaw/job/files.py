"""Helpers every job file factory shares: the wrapper script, the job's environment, writing files."""

from __future__ import annotations

import configparser
import logging
import os
import re
from importlib import resources

import luigi.configuration

from pylaw.errors import JobFileError
from pylaw.job.base import JobContext
from pylaw.target.publish import atomic_open

WRAPPER_NAME = "pylaw_wrapper.sh"
#: the submitter's effective Luigi config, as shipped to jobs without a shared code path
CONFIG_NAME = "pylaw_luigi.cfg"

logger = logging.getLogger("pylaw.job")

#: environment variables that are never written into a job file, whoever asks
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE_KEY|API_KEY)", re.I)


def wrapper_source() -> str:
    """The job wrapper script shipped with pylaw (package data ``pylaw/job/wrapper.sh``)."""
    return resources.files("pylaw.job").joinpath("wrapper.sh").read_text()


def copy_wrapper(job_dir: str) -> str:
    """Place the wrapper next to the job files, so running jobs do not depend on the installed pylaw."""
    path = os.path.join(job_dir, WRAPPER_NAME)
    source = wrapper_source()
    try:
        with open(path) as f:
            if f.read() == source:
                return path
    except FileNotFoundError:
        pass
    write_script(path, source)
    return path


def job_environment(context: JobContext) -> dict[str, str]:
    """The ``PYLAW_*`` variables the wrapper reads, plus the context's own ``env``.

    Without a shared file system, logs go to ``logs`` and the bundle is named by its file
    name, both in the job's working directory (the batch system transfers them).

    Names that look like credentials are refused: a job file is readable by the batch
    system's administrators and stays on disk. Pass credentials through the batch
    system's own mechanisms (e.g. a proxy file path), never by value.
    """
    logs = os.path.join(context.job_dir, "logs") if context.shared_filesystem else "logs"  # transferred back
    bundle = context.bundle if context.shared_filesystem else os.path.basename(context.bundle)  # transferred in
    config = context.luigi_config if context.shared_filesystem else os.path.basename(context.luigi_config)
    env = {"PYLAW_SETUP_FILE": context.setup_file, "PYLAW_VENV": context.venv,
           "PYLAW_PYTHONPATH": os.pathsep.join(context.pythonpath),
           "PYLAW_LOG_DIR": logs if context.transfer_logs else "",
           "PYLAW_BUNDLE": bundle, "PYLAW_PYTHON": context.worker_python, "PYLAW_LUIGI_CONFIG": config}
    for key, value in context.env.items():
        if SECRET_NAME.search(key):
            raise JobFileError(f"environment variable {key} looks like a credential and is not written into "
                               f"job files of {context.task_name}; let the job read it from a file instead")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise JobFileError(f"{key!r} is not a valid environment variable name "
                               f"(job of {context.task_name})")
        env[key] = value
    return {key: value for key, value in env.items() if value}


def write_job_config(job_dir: str, task_name: str) -> str:
    """Write the submitter's effective Luigi config into ``job_dir`` for jobs that do not run its code.

    The effective config is what this process reads (every config file, in Luigi's order,
    plus settings made at run time), written as one file with the raw values: ``${VAR}`` and
    ``%(key)s`` stay unexpanded, so nothing of the submitter's environment is resolved into
    it. Keys whose name looks like a credential (:data:`SECRET_NAME`) are dropped, with a
    warning naming them: a job file stays on disk and is transferred to the worker; jobs
    that need a credential read it from a file given by path. Returns the file's path.
    """
    parser = luigi.configuration.get_config()
    if not isinstance(parser, configparser.RawConfigParser):
        logger.warning("the Luigi config is not an INI file (LUIGI_CONFIG_PARSER=toml?): it is not shipped to "
                       "the jobs of %s, which read only the config their bundle or setup provides", task_name)
        return ""
    out = configparser.RawConfigParser(interpolation=None)
    out.optionxform = str  # type: ignore[assignment,method-assign]
    dropped = []
    defaults = parser.defaults()
    for key, value in defaults.items():
        if SECRET_NAME.search(key):
            dropped.append(f"[DEFAULT] {key}")
        else:
            out[configparser.DEFAULTSECT][key] = value
    for section in parser.sections():
        out.add_section(section)
        for key, value in parser.items(section, raw=True):
            if key in defaults and defaults[key] == value:
                continue  # inherited from DEFAULT, written there
            if SECRET_NAME.search(key):
                dropped.append(f"[{section}] {key}")
            else:
                out.set(section, key, value)
    if dropped:
        logger.warning("not shipped to the jobs of %s, the keys look like credentials: %s", task_name,
                       ", ".join(dropped))
    os.makedirs(job_dir, exist_ok=True)
    path = os.path.join(job_dir, CONFIG_NAME)
    with atomic_open(path) as f:
        f.write(f"# pylaw: the submitter's Luigi config for jobs of {task_name} (credential-like keys dropped)\n")
        out.write(f)
    return path


def write_script(path: str, text: str) -> None:
    """Write an executable file atomically (a job may start reading it right away)."""
    with atomic_open(path, permissions=0o755) as f:
        f.write(text)
