"""Checks of a command line before Luigi sees it.

Luigi's parser turns most mistakes into a traceback (``--n abc``: "invalid literal for
int()", without naming ``--n``) or accepts them silently (``--local --workflow X``,
``--local-scheduler`` next to ``--central-scheduler``). ``pyl`` checks every option the way
Luigi will read it (same flags, same parameter objects) and stops with one message that
names the option, the bad value and what would be valid.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import luigi
from luigi.task_register import Register, TaskClassNotFoundException

from pylaw.errors import UsageError

#: options of Luigi's command line that are not parameters of any task or config class
_LUIGI_FLAGS = {"--help", "--help-all"}
_BOOLS = {"true", "false"}


@dataclass(frozen=True)
class Option:
    """One command-line flag Luigi accepts, and the parameter it sets."""

    flag: str
    owner: str  # task family or config section
    name: str
    param: luigi.Parameter

    @property
    def takes_value(self) -> bool:
        return not isinstance(self.param, luigi.BoolParameter)

    @property
    def optional_value(self) -> bool:
        """A switch that also accepts ``true``/``false`` after it (Luigi's explicit bool parsing)."""
        explicit = luigi.BoolParameter.EXPLICIT_PARSING
        return isinstance(self.param, luigi.BoolParameter) and self.param.parsing == explicit


def task_class(family: str) -> type[luigi.Task]:
    try:
        return Register.get_task_cls(family)
    except TaskClassNotFoundException as exc:
        raise UsageError(str(exc).strip()) from None


def options(root: str) -> dict[str, Option]:
    """Every flag Luigi's parser builds for a command line whose root task is ``root``."""
    table: dict[str, Option] = {}
    for owner, without_section, name, param in Register.get_all_params():
        flag = "--" + (name if without_section else f"{owner}_{name}").replace("_", "-")
        table.setdefault(flag, Option(flag, owner, name, param))
    for name, param in task_class(root).get_params():  # the root task's own short flags win
        flag = "--" + name.replace("_", "-")
        table[flag] = Option(flag, root, name, param)
    return table


def check(argv: Sequence[str]) -> None:
    """Raise :class:`UsageError` for the first thing in ``argv`` Luigi would not handle cleanly.

    ``argv`` is Luigi's form (``--module M Task --param value ...``); the module is imported.
    """
    root = next((a for i, a in enumerate(argv) if not a.startswith("-") and not _is_value(argv, i)), None)
    if root is None:
        raise UsageError("no task given: pyl TASK [--param value ...]")
    table = options(root)
    if any(a in _LUIGI_FLAGS for a in argv):
        return  # Luigi prints the task's help
    given: dict[str, tuple[Option, str | None]] = {}
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == root or token in _LUIGI_FLAGS:
            continue
        if not token.startswith("--"):
            raise UsageError(f"unexpected argument {token!r}: parameters are given as --name value"
                             + _after_flag_hint(tokens, i - 1, table))
        flag, eq, inline = token.partition("=")
        option = _lookup(flag, table, root)
        if not option.takes_value:
            value = inline if eq else None
            if option.optional_value and not eq and i < len(tokens) and tokens[i].lower() in _BOOLS:
                value, i = tokens[i], i + 1
            elif eq and not option.optional_value:
                raise UsageError(f"{flag} is a switch and takes no value: give {flag} for true, leave it out for false")
            if value is not None:
                _parse(option, value, root)
            given[option.flag] = (option, value)
            continue
        if eq:
            value = inline
        elif i < len(tokens) and not (tokens[i].startswith("--") and tokens[i] != "--"):
            value, i = tokens[i], i + 1
        else:
            raise UsageError(f"{flag} needs a value{_describe(option)}")
        if option.flag in given and given[option.flag][1] != value:
            raise UsageError(f"{flag} is given twice ({given[option.flag][1]!r} and {value!r}); give it once")
        _parse(option, value, root)
        given[option.flag] = (option, value)
    _check_required(root, table, given)
    _check_combinations(given)


def _is_value(argv: Sequence[str], i: int) -> bool:
    """Whether ``argv[i]`` is the value of the option before it (``--module M``)."""
    return i > 0 and argv[i - 1].startswith("--") and "=" not in argv[i - 1] and argv[i - 1] in ("--module",)


def _lookup(flag: str, table: dict[str, Option], root: str) -> Option:
    if flag in table:
        return table[flag]
    prefixed = [f for f in table if f.startswith(flag)]
    if len(prefixed) == 1:  # Luigi's argparse accepts unambiguous prefixes; so does pyl
        return table[prefixed[0]]
    own = [f"--{name.replace('_', '-')}" for name, _ in task_class(root).get_params()]
    close = difflib.get_close_matches(flag, own, n=3, cutoff=0.6) or difflib.get_close_matches(flag, table, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else f"; {root} takes {', '.join(own)}"
    raise UsageError(f"unknown parameter {flag} for {root}{hint}")


def _parse(option: Option, value: str, root: str) -> None:
    """Parse ``value`` exactly as Luigi will, so a bad one fails here with a clear message."""
    try:
        parsed = option.param.parse(value)
        if isinstance(parsed, float) and math.isnan(parsed):
            raise UsageError(f"invalid value {value!r} for {option.flag}: not a number (nan)")
        option.param.normalize(parsed)
    except UsageError:
        raise
    except Exception as exc:  # every parameter type raises its own kind
        where = "" if option.owner == root else f" (of [{option.owner}])"
        raise UsageError(f"invalid value {value!r} for {option.flag}{where}: {_reason(option, exc)}"
                         f"{_describe(option)}") from None


def _reason(option: Option, exc: Exception) -> str:
    param = option.param
    if isinstance(param, luigi.ChoiceParameter):
        return f"expected one of {', '.join(sorted(map(str, param._choices)))}"
    if isinstance(param, luigi.BoolParameter):
        return "expected true or false"
    if isinstance(param, luigi.IntParameter):
        return "expected an integer" + (" (or nothing)" if isinstance(param, luigi.OptionalIntParameter) else "")
    if isinstance(param, luigi.FloatParameter):
        return "expected a number"
    message = str(exc)
    prefix = f"parameter {option.flag}: "
    return message.split(prefix, 1)[-1] if prefix in message else message


def _describe(option: Option) -> str:
    return f" ({option.param.description})" if option.param.description else ""


def _after_flag_hint(tokens: Sequence[str], i: int, table: dict[str, Option]) -> str:
    previous = tokens[i - 1] if i > 0 else ""
    option = table.get(previous.partition("=")[0])
    if option is not None and not option.takes_value:
        return f" ({previous} is a switch and takes no value: give {previous} for true, leave it out for false)"
    return ""


def _check_required(root: str, table: dict[str, Option], given: dict[str, tuple[Option, str | None]]) -> None:
    cls = task_class(root)
    for name, param in cls.get_params():
        flag = "--" + name.replace("_", "-")
        if flag in given or param.has_task_value(root, name):
            continue
        raise UsageError(f"{root} needs {flag}{_describe(table[flag])}")


def _check_combinations(given: dict[str, tuple[Option, str | None]]) -> None:
    local_scheduler = "--local-scheduler" in given and given["--local-scheduler"][1] not in ("false", "False")
    central = [f for f in ("--scheduler-host", "--scheduler-port", "--scheduler-url") if f in given]
    if local_scheduler and central:
        raise UsageError(f"--local-scheduler contradicts {', '.join(central)}: choose one scheduler")
    local = "--local" in given and given["--local"][1] not in ("false", "False")
    workflow = given.get("--workflow", (None, None))[1]
    if local and workflow not in (None, "", "local"):
        raise UsageError(f"--local contradicts --workflow {workflow}: --local is short for --workflow local")
