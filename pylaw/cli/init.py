"""``pylaw init``: the ``luigi.cfg`` a new analysis starts from.

Luigi's own command line exits 0 when a task fails unless ``[retcode]`` says otherwise, so a
project set up by pylaw writes the codes ``pyl`` uses (docs/cli.rst): scripts and CI can
then trust ``luigi --module ...`` as much as ``pyl``.
"""

from __future__ import annotations

import os

from pylaw.errors import UsageError
from pylaw.target.publish import atomic_open

#: ``[retcode]`` values matching ``pyl``'s exit codes: 1 failed, 2 usage, 3 held by another run
RETCODES = {
    "already_running": 3,
    "missing_data": 1,
    "not_run": 3,
    "task_failed": 1,
    "scheduling_error": 2,
    "unhandled_exception": 2,
}


LOGGING_INI = """# Logging of pyl and luigi for this analysis (read through [core] logging_conf_file):
# Luigi's format, warnings and errors on stderr; a usage error of `luigi --module ...`
# (a bad value, a missing parameter) in one line instead of a traceback (pylaw.logs).
[loggers]
keys = root

[handlers]
keys = stderr

[formatters]
keys = concise

[logger_root]
level = WARNING
handlers = stderr

[handler_stderr]
class = StreamHandler
args = (sys.stderr,)
formatter = concise

[formatter_concise]
class = pylaw.logs.ConciseErrors
format = %(levelname)s: %(message)s
"""


def config_text(modules: str, store: str, logging_conf: str | None = None) -> str:
    """The text of a project's ``luigi.cfg`` (``logging_conf``: path of its logging config)."""
    retcodes = "\n".join(f"{key} = {value}" for key, value in RETCODES.items())
    logging_line = f"logging_conf_file = {logging_conf}\n" if logging_conf else ""
    return f"""# Configuration of this analysis for pyl and luigi (point LUIGI_CONFIG_PATH here,
# or run from this directory). Every key: docs/configuration.rst.
[pylaw]
modules = {modules}
store = {store}

[core]
log_level = WARNING
{logging_line}
# Exit codes of `luigi --module ...`, the same as pyl's: 0 ok, 1 a task failed or an
# input is missing, 2 a usage or configuration error, 3 already running elsewhere.
# Without this section Luigi exits 0 even when tasks fail.
[retcode]
{retcodes}
"""


def write_config(path: str, modules: str, store: str, force: bool = False) -> str:
    """Write ``luigi.cfg`` (and ``logging.ini`` beside it) at ``path``, a directory or a file.

    Never over an existing file unless ``force``; the logging config is referred to by its
    absolute path, as Luigi opens it from wherever it runs.
    """
    if os.path.isdir(path):
        path = os.path.join(path, "luigi.cfg")
    logging_path = os.path.join(os.path.dirname(os.path.abspath(path)), "logging.ini")
    for existing in (path, logging_path):
        if os.path.exists(existing) and not force:
            raise UsageError(f"{existing} exists already; pass --force to replace it")
    _write(logging_path, LOGGING_INI)
    _write(path, config_text(modules, store, logging_path))
    return path


def _write(path: str, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)
