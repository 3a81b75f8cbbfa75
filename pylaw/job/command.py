"""The one seam through which pylaw calls a batch system's command line.

Job managers never call ``subprocess`` themselves: they hand an argv list to a
:class:`CommandRunner`. That gives one place for timeouts, for error messages that name
the command, and for counting calls (the benchmark reads ``calls``); tests can pass a
double with the same ``run()`` signature where a real command cannot exist.

Commands are argv lists, never shell strings: nothing is ever parsed by a shell here.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pylaw import processenv
from pylaw.errors import CommandError, CommandTimeoutError

logger = logging.getLogger("pylaw.job")


@dataclass(frozen=True)
class CommandResult:
    """What a finished command produced."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class CommandRunner:
    """Runs argv lists with a timeout; raises :class:`CommandError` on failure when asked.

    ``calls`` counts every command started through this runner (per executable name).
    """

    def __init__(self, timeout: float = 120.0, env: Mapping[str, str] | None = None) -> None:
        self.timeout = timeout
        self.env = dict(env) if env is not None else None
        self.calls: dict[str, int] = {}

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def run(self, argv: Sequence[str], check: bool = True, timeout: float | None = None,
            input: str | None = None) -> CommandResult:
        """Run ``argv``; with ``check`` a non-zero exit raises :class:`CommandError`."""
        if isinstance(argv, str):
            raise TypeError(f"commands are argv lists, not shell strings: {argv!r}")
        argv = [str(arg) for arg in argv]
        name = os.path.basename(argv[0])
        self.calls[name] = self.calls.get(name, 0) + 1
        limit = self.timeout if timeout is None else timeout
        env = {**processenv.inherited_environment(), **(self.env or {})}  # not pylaw's own library defaults
        logger.debug("running %s", argv)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=limit, env=env, input=input,
                                  stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise CommandTimeoutError(
                f"{name} did not finish within {limit:g} s and was killed ({' '.join(argv[:6])} ...); "
                f"the batch system may be overloaded: retry later or raise the timeout", argv) from exc
        except FileNotFoundError as exc:
            raise CommandError(f"{name} is not installed or not on PATH; install the batch system's client "
                               f"tools on this machine", argv) from exc
        result = CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise CommandError(
                f"{name} exited with code {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}",
                argv, proc.returncode, proc.stderr)
        return result
