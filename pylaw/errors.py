"""The exception tree of pylaw.

Every error pylaw raises derives from :class:`PylawError`; leaves also derive from the
builtin exception they mean, so ``except FileNotFoundError`` keeps working::

    PylawError
    ├── ConfigError                (ValueError)   malformed or missing configuration
    ├── ParameterValueError        (ValueError)   a parameter value that cannot be parsed
    ├── PathEscapeError            (ValueError)   a path that would leave its store
    ├── BranchError                (IndexError)   a branch number outside the branch map
    ├── WorkflowChoiceError        (ValueError)   a --workflow the task does not support
    ├── TaskNotFoundError          (LookupError)  a task name no indexed module defines
    ├── FormatterError             (ValueError)   no formatter for a file extension
    └── BranchFailuresError        (RuntimeError) branches of a local workflow failed

Messages say what failed, for what, why, and what to do.
"""

from __future__ import annotations


class PylawError(Exception):
    """Root of every error raised by pylaw."""


class ConfigError(PylawError, ValueError):
    """The configuration is malformed or lacks a required key."""


class ParameterValueError(PylawError, ValueError):
    """A parameter value could not be parsed or normalised."""


class PathEscapeError(PylawError, ValueError):
    """A path built from parameter values would leave its store."""


class BranchError(PylawError, IndexError):
    """A branch number is not part of the workflow's branch map."""


class WorkflowChoiceError(PylawError, ValueError):
    """The requested workflow type is not implemented by the task class."""


class TaskNotFoundError(PylawError, LookupError):
    """No known module defines the requested task."""


class FormatterError(PylawError, ValueError):
    """No formatter can read or write the requested file."""


class BranchFailuresError(PylawError, RuntimeError):
    """One or more branches of a workflow failed; ``failures`` maps branch to traceback."""

    def __init__(self, message: str, failures: dict[int, str]) -> None:
        super().__init__(message)
        self.failures = failures
