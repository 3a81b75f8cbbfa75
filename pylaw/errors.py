"""The exception tree of pylaw.

Every error pylaw raises derives from :class:`PylawError`; leaves also derive from the
builtin exception they mean, so ``except FileNotFoundError`` keeps working::

    PylawError
    ├── ConfigError                (ValueError)   malformed or missing configuration
    ├── UsageError                 (ValueError)   a command line pylaw cannot run as given
    ├── ParameterValueError        (ValueError)   a parameter value that cannot be parsed
    ├── PathEscapeError            (ValueError)   a path that would leave its store
    ├── BranchError                (IndexError)   a branch number outside the branch map
    ├── BranchMapNotReadyError     (RuntimeError) a branch map whose upstream outputs are missing
    ├── WorkflowChoiceError        (ValueError)   a --workflow the task does not support
    ├── UnknownComputingElementError (LookupError) a --ce NAME without [ce:NAME] section
    ├── TaskNotFoundError          (LookupError)  a task name no indexed module defines
    ├── FormatterError             (ValueError)   no formatter for a file extension
    ├── UnreadableFileError        (ValueError)   a file whose content its formatter cannot read
    ├── BranchFailuresError        (RuntimeError) branches of a local workflow failed
    ├── MissingOutputError         (RuntimeError) a task's run() returned without writing its outputs
    ├── ShiftError                 (ValueError)   an unknown or malformed systematic shift
    ├── ProvenanceError            (ValueError)   a provenance record that is missing or unreadable
    │   └── NotReproducibleError                  the recorded code version is not available here
    │
    │   remote storage (pylaw.target.remote), see below
    ├── StorageConfigError         (ConfigError)  a [storage:NAME] section is missing or malformed
    ├── RemoteBackendMissingError  (ImportError)  the gfal2 (or XRootD) Python bindings are not installed
    ├── TransferFailedError        (RuntimeError) files of a batch transfer failed for good
    └── RemoteError                (OSError)      a remote operation failed; ``url``, ``operation``
        ├── RemoteFileNotFoundError    (FileNotFoundError)
        ├── RemoteFileExistsError      (FileExistsError)
        ├── RemotePermissionError      (PermissionError)
        ├── RemoteIsADirectoryError    (IsADirectoryError)
        ├── RemoteNotADirectoryError   (NotADirectoryError)
        ├── RemoteDirectoryNotEmptyError
        ├── RemoteNotSupportedError                   the server cannot do this (e.g. third-party copy)
        ├── RemoteCertificateError                    the server's TLS certificate is not trusted
        ├── RemoteChecksumError        (ValueError)   the data's checksum differs from the expected one
        └── TransientRemoteError                      the only kind that is retried
            ├── RemoteConnectionError  (ConnectionError)
            └── RemoteTimeoutError     (TimeoutError)

    batch jobs (pylaw.job, pylaw.workflow.remote), see below
    ├── CommandError               (RuntimeError) a batch-system command exited non-zero
    │   └── CommandTimeoutError    (TimeoutError) ... or did not finish in time
    ├── JobFileError               (ValueError)   a job file cannot be rendered safely
    ├── BundleError                (ValueError)   a code bundle for jobs cannot be built
    ├── SubmissionStateError       (ValueError)   the submission state file is unreadable
    ├── SubmissionLockedError      (RuntimeError) another process submits and polls the same workflow
    ├── CredentialError            (RuntimeError) a grid proxy or token cannot be used (pylaw.job.credentials)
    │   ├── CredentialNotFoundError (FileNotFoundError) none where the grid tools look
    │   └── CredentialLifetimeError                expired, or ends before the jobs can
    └── RemoteWorkflowFailedError  (RuntimeError) more branches failed than tolerance allows

Messages say what failed, for what, why, and what to do.
"""

from __future__ import annotations


class PylawError(Exception):
    """Root of every error raised by pylaw."""


class ConfigError(PylawError, ValueError):
    """The configuration is malformed or lacks a required key."""


class UsageError(PylawError, ValueError):
    """A command line that names an unknown option, a bad value or contradicting options."""


class ParameterValueError(PylawError, ValueError):
    """A parameter value could not be parsed or normalised."""


class PathEscapeError(PylawError, ValueError):
    """A path built from parameter values would leave its store."""


class BranchError(PylawError, IndexError):
    """A branch number is not part of the workflow's branch map."""


class BranchMapNotReadyError(PylawError, RuntimeError):
    """A branch map is built from upstream outputs that do not exist yet (``branch_map_requires()``)."""


class WorkflowChoiceError(PylawError, ValueError):
    """The requested workflow type is not implemented by the task class."""


class UnknownComputingElementError(PylawError, LookupError):
    """``--ce NAME`` names no ``[ce:NAME]`` section of the config."""


class TaskNotFoundError(PylawError, LookupError):
    """No known module defines the requested task."""


class FormatterError(PylawError, ValueError):
    """No formatter can read or write the requested file."""


class UnreadableFileError(PylawError, ValueError):
    """A file exists but its formatter cannot read it (truncated, corrupt, another format)."""


class ShiftError(PylawError, ValueError):
    """A shift name that is malformed or whose source the analysis does not declare."""


class ProvenanceError(PylawError, ValueError):
    """A provenance record is missing, unreadable or names something pylaw cannot locate."""


class NotReproducibleError(ProvenanceError):
    """The code version a record names is not what the current checkout holds (or cannot be checked out)."""


class MissingOutputError(PylawError, RuntimeError):
    """A task's ``run()`` returned without writing every output it declares."""


class BranchFailuresError(PylawError, RuntimeError):
    """One or more branches of a workflow failed; ``failures`` maps branch to traceback."""

    def __init__(self, message: str, failures: dict[int, str]) -> None:
        super().__init__(message)
        self.failures = failures


# --- remote storage (pylaw.target.remote) ---------------------------------------------
# Foreign errors (gfal2.GError) are mapped to these in one place:
# pylaw.target.remote.gfal.map_gerror. Only TransientRemoteError is ever retried.


class StorageConfigError(ConfigError):
    """A ``[storage:NAME]`` config section is missing or has a malformed key."""


class RemoteBackendMissingError(PylawError, ImportError):
    """The Python package a remote file interface needs (gfal2) cannot be imported."""


class TransferFailedError(PylawError, RuntimeError):
    """Some files of a batch transfer still failed after retries; ``results`` has one per file."""

    def __init__(self, message: str, results: list) -> None:
        super().__init__(message)
        self.results = results


class RemoteError(PylawError, OSError):
    """A remote file operation failed for a reason that retrying will not change.

    ``operation`` is what was attempted (``stat``, ``copy``, ...), ``url`` on what, and
    ``code`` the errno reported by the backend, if any.
    """

    def __init__(self, message: str, operation: str = "", url: str = "", code: int | None = None) -> None:
        super().__init__(message)
        self.operation = operation
        self.url = url
        self.code = code

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RemoteFileNotFoundError(RemoteError, FileNotFoundError):
    """The remote file or directory does not exist."""


class RemoteFileExistsError(RemoteError, FileExistsError):
    """The remote path exists already."""


class RemotePermissionError(RemoteError, PermissionError):
    """The storage refused the operation (credentials, ACLs, read-only export)."""


class RemoteIsADirectoryError(RemoteError, IsADirectoryError):
    """A file operation was applied to a remote directory."""


class RemoteNotADirectoryError(RemoteError, NotADirectoryError):
    """A directory operation was applied to a remote file."""


class RemoteDirectoryNotEmptyError(RemoteError):
    """A non-recursive removal met a non-empty remote directory."""


class RemoteNotSupportedError(RemoteError):
    """The storage does not support the operation (e.g. xrootd without third-party copy)."""


class RemoteCertificateError(RemoteError):
    """The server's TLS certificate was refused (untrusted issuer, wrong host name, expired).

    Not retried: the next attempt meets the same certificate.
    """


class RemoteChecksumError(RemoteError, ValueError):
    """A transferred file's checksum differs from the one its source has; ``algorithm``,
    ``expected``, ``actual``.

    Not retried: a mismatch means the source changed while it was sent, or the network or
    the storage corrupted it; a silent retry would hide that. Uploads raise it before the
    file gets its final name, downloads before the local file is renamed into place.
    """

    def __init__(self, message: str, operation: str = "", url: str = "", algorithm: str = "",
                 expected: str = "", actual: str = "") -> None:
        super().__init__(message, operation=operation, url=url)
        self.algorithm, self.expected, self.actual = algorithm, expected, actual


class TransientRemoteError(RemoteError):
    """A failure that may go away when retried (network, overloaded server, timeout)."""


class RemoteConnectionError(TransientRemoteError, ConnectionError):
    """The storage could not be reached or dropped the connection."""


class RemoteTimeoutError(TransientRemoteError, TimeoutError):
    """A remote operation did not finish in time."""


# --- batch jobs (pylaw.job, pylaw.workflow.remote) ---------------------------------------
# Every batch-system command runs through pylaw.job.command.CommandRunner, which raises
# them; a refused submission is a per-job result that the poll loop retries or gives up.


class CommandError(PylawError, RuntimeError):
    """A command-line call exited with a non-zero code; ``argv``, ``returncode``, ``stderr``."""

    def __init__(self, message: str, argv: list[str], returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr


class CommandTimeoutError(CommandError, TimeoutError):
    """A command-line call did not finish within its timeout and was killed."""


class JobFileError(PylawError, ValueError):
    """A job file cannot be rendered (e.g. a value that must not be written into it)."""


class BundleError(PylawError, ValueError):
    """A code bundle for jobs without a shared file system cannot be built (what is missing, what to do)."""


class SubmissionStateError(PylawError, ValueError):
    """The submission state file of a remote workflow exists but cannot be used."""


class SubmissionLockedError(PylawError, RuntimeError):
    """Another process holds the submitter lock of the workflow (it submits and polls its jobs)."""


class CredentialError(PylawError, RuntimeError):
    """A grid credential (X.509 proxy, WLCG token) cannot be used for the jobs: unreadable,
    malformed, without the VO the computing element needs. Never holds the credential's content."""


class CredentialNotFoundError(CredentialError, FileNotFoundError):
    """No credential where the grid tools look for one (``X509_USER_PROXY``, ``BEARER_TOKEN_FILE``, ...)."""


class CredentialLifetimeError(CredentialError):
    """A credential is expired, or expires before the jobs can end (walltime plus margin)."""


class RemoteWorkflowFailedError(PylawError, RuntimeError):
    """Branches of a remote workflow failed for good, beyond its tolerance; ``failed`` lists them."""

    def __init__(self, message: str, failed: list[int]) -> None:
        super().__init__(message)
        self.failed = failed
