"""``pylaw init``: the ``luigi.cfg`` a new analysis starts from.

Luigi's own command line exits 0 when a task fails unless ``[retcode]`` says otherwise, so a
project set up by pylaw writes the codes ``pyl`` uses (docs/cli.rst): scripts and CI can
then trust ``luigi --module ...`` as much as ``pyl``.
"""

from __future__ import annotations

import os

from pylaw.errors import UsageError

#: ``[retcode]`` values matching ``pyl``'s exit codes: 1 failed, 2 usage, 3 held by another run
RETCODES = {
    "already_running": 3,
    "missing_data": 1,
    "not_run": 3,
    "task_failed": 1,
    "scheduling_error": 2,
    "unhandled_exception": 2,
}


def config_text(modules: str, store: str) -> str:
    """The text of a project's ``luigi.cfg``."""
    retcodes = "\n".join(f"{key} = {value}" for key, value in RETCODES.items())
    return f"""# Configuration of this analysis for pyl and luigi (point LUIGI_CONFIG_PATH here,
# or run from this directory). Every key: docs/configuration.rst.
[pylaw]
modules = {modules}
store = {store}

[core]
log_level = WARNING

# Exit codes of `luigi --module ...`, the same as pyl's: 0 ok, 1 a task failed or an
# input is missing, 2 a usage or configuration error, 3 already running elsewhere.
# Without this section Luigi exits 0 even when tasks fail.
[retcode]
{retcodes}
"""


def write_config(path: str, modules: str, store: str, force: bool = False) -> str:
    """Write ``luigi.cfg`` at ``path`` (a directory or a file); never over an existing file unless ``force``."""
    if os.path.isdir(path):
        path = os.path.join(path, "luigi.cfg")
    if os.path.exists(path) and not force:
        raise UsageError(f"{path} exists already; pass --force to replace it")
    tmp = f"{path}.pylaw-tmp"
    with open(tmp, "w") as f:
        f.write(config_text(modules, store))
    os.replace(tmp, path)
    return path
