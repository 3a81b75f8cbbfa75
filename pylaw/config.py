"""pylaw's configuration: the ``[pylaw]`` section of Luigi's config file.

Luigi's own config machinery (``luigi.cfg``, ``LUIGI_CONFIG_PATH``) is reused, so one file
configures both. Environment variables win over the file where noted, so batch jobs can
redirect outputs without editing config. The store root is read from the file directly
(it is needed once per task instance), so ``--pylaw-store`` on the command line has no
effect: use ``PYLAW_STORE``.
"""

from __future__ import annotations

import configparser
import os
import re

import luigi

from pylaw.errors import ConfigError

STORE_ENV = "PYLAW_STORE"
INDEX_ENV = "PYLAW_INDEX"


class pylaw(luigi.Config):  # noqa: N801 - the class name is the config section name
    """The ``[pylaw]`` config section."""

    store = luigi.Parameter(
        default="data", description="root directory of local outputs ($PYLAW_STORE wins)"
    )
    modules = luigi.Parameter(
        default="", description="comma-separated modules whose tasks `pyl` can find"
    )
    index_file = luigi.Parameter(
        default=".pylaw_index.json", description="where `pylaw index` caches task locations"
    )
    central_scheduler = luigi.BoolParameter(
        default=False, description="let `pylaw run` use luigid instead of a local scheduler"
    )
    progress_interval = luigi.FloatParameter(
        default=5.0, description="seconds between plain progress lines (workflows, transfers) when not on a terminal"
    )
    shift_sources = luigi.Parameter(
        default="", description="extra systematic sources, e.g. 'jes, pdf' (see pylaw.shift)"
    )


def section() -> pylaw:
    """The current ``[pylaw]`` section values."""
    try:
        return pylaw()
    except Exception as exc:  # luigi raises plain errors for unparsable values
        raise ConfigError(f"the [pylaw] config section is malformed: {root_cause(exc)}") from exc


def root_cause(exc: BaseException) -> str:
    """The message that names the key: Luigi wraps it (the config parser's error, else the innermost)."""
    chain = [exc]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)  # type: ignore[arg-type]
    named = [e for e in chain if isinstance(e, configparser.Error)] or chain
    message = " ".join(str(named[-1]).split())
    key = next((m.group(1) for e in chain if (m := _LUIGI_KEY.search(str(e)))), None)
    return f"{key}: {message}" if key and key not in message else message


_LUIGI_KEY = re.compile(r"parsing the default value of '(\w+)'")


def unknown_sections(known: set[str]) -> list[str]:
    """Config sections that look like task names (``[Selection]``) but name no known task or config class."""
    parser = luigi.configuration.get_config()
    return [name for name in parser.sections() if name[:1].isupper() and name not in known]


def store_root() -> str:
    """Absolute path of the local store: ``$PYLAW_STORE`` or ``[pylaw] store``."""
    # read the key directly: instantiating the Config section costs ~20 look-ups per call,
    # and this runs once per task instance
    root = os.environ.get(STORE_ENV) or luigi.configuration.get_config().get("pylaw", "store", "data")
    if not root:
        raise ConfigError(f"the local store is empty: set ${STORE_ENV} or [pylaw] store")
    return os.path.abspath(os.path.expanduser(root))


def configured_modules() -> list[str]:
    """Modules listed in ``[pylaw] modules``."""
    return [m.strip() for m in section().modules.split(",") if m.strip()]


def index_path() -> str:
    """Absolute path of the task index file: ``$PYLAW_INDEX`` or ``[pylaw] index_file``."""
    return os.path.abspath(os.environ.get(INDEX_ENV) or section().index_file)

