"""One-line usage errors on Luigi's own command line, through Luigi's logging config.

``luigi --module ...`` logs every exception of its command-line handling as "Uncaught
exception in luigi" with the whole traceback, for a mistyped ``--n abc`` as for a bug.
:class:`ConciseErrors` is a logging formatter (``pylaw init`` points ``[core]
logging_conf_file`` at a config using it) that words the mistakes of a user (pylaw's
errors, Luigi's parameter errors, a value that does not parse) in one line naming the
parameter, and leaves every other traceback as it is.
"""

from __future__ import annotations

import logging
import re

import luigi

from pylaw import luigi_private
from pylaw.config import root_cause
from pylaw.errors import PylawError

_LUIGI_TASK_PREFIX = re.compile(r"^\w+\[args=.*?, kwargs=.*?\]: ")


def describe_usage_error(exc: BaseException) -> str | None:
    """The one-line message for a mistake on the command line or in the config; None for a bug."""
    if isinstance(exc, PylawError):
        return str(exc)
    if isinstance(exc, luigi.parameter.ParameterException):
        return _LUIGI_TASK_PREFIX.sub("", str(exc))
    if not isinstance(exc, (ValueError, TypeError)):
        return None
    parsed = luigi_private.parameter_being_parsed(exc.__traceback__)
    if parsed is None:
        return None
    owner, name, value = parsed
    shown = f" {value!r}" if value is not None else ""
    return f"invalid value{shown} for --{name.replace('_', '-')} ({owner}): {root_cause(exc)}"


class ConciseErrors(logging.Formatter):
    """Luigi's ``LEVEL: message`` format; a usage error's traceback becomes its one-line description."""

    def __init__(self, fmt: str | None = "%(levelname)s: %(message)s", *args: object, **kwargs: object) -> None:
        super().__init__(fmt, *args, **kwargs)  # type: ignore[arg-type]

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info and record.exc_info[1] is not None:
            text = describe_usage_error(record.exc_info[1])
            if text is not None:
                record = logging.makeLogRecord({**record.__dict__, "msg": text, "args": (),
                                                "exc_info": None, "exc_text": None})
        return super().format(record)
