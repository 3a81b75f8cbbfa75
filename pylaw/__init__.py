"""pylaw: make-like, distributed physics analyses on top of Luigi.

Only names listed in ``__all__`` are public; importing pylaw configures nothing. Remote
targets and batch workflows are imported on first use, so ``import pylaw`` stays fast.
"""

from importlib import import_module
from typing import Any

from pylaw.errors import PylawError

__version__ = "0.1.0"

#: public names, imported on first use: name -> module. Nothing here imports Luigi, whose
#: import reads the config files: ``pyl`` must be able to report a malformed one cleanly.
_LAZY = {
    "BytesParameter": "pylaw.parameter",
    "CSVParameter": "pylaw.parameter",
    "DurationParameter": "pylaw.parameter",
    "MultiCSVParameter": "pylaw.parameter",
    "RangeParameter": "pylaw.parameter",
    "NOMINAL": "pylaw.shift",
    "ShiftTask": "pylaw.shift",
    "register_shift_sources": "pylaw.shift",
    "req_shifts": "pylaw.shift",
    "SiblingFileCollection": "pylaw.target.collection",
    "TargetCollection": "pylaw.target.collection",
    "LocalDirectoryTarget": "pylaw.target.local",
    "LocalFileTarget": "pylaw.target.local",
    "Task": "pylaw.task",
    "BaseWorkflow": "pylaw.workflow.base",
    "LocalWorkflow": "pylaw.workflow.local",
    "RemoteFileTarget": "pylaw.target.remote.target",
    "RemoteDirectoryTarget": "pylaw.target.remote.target",
    "DCacheTarget": "pylaw.target.remote.target",
    "DCacheDirectoryTarget": "pylaw.target.remote.target",
    "BaseRemoteWorkflow": "pylaw.workflow.remote",
    "SlurmWorkflow": "pylaw.workflow.slurm",
    "HTCondorWorkflow": "pylaw.workflow.htcondor",
    "GliteWorkflow": "pylaw.workflow.glite",
    "ARCWorkflow": "pylaw.workflow.arc",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pylaw' has no attribute {name!r}")


__all__ = [
    "NOMINAL",
    "ARCWorkflow",
    "BaseRemoteWorkflow",
    "BaseWorkflow",
    "BytesParameter",
    "CSVParameter",
    "DCacheDirectoryTarget",
    "DCacheTarget",
    "DurationParameter",
    "GliteWorkflow",
    "HTCondorWorkflow",
    "LocalDirectoryTarget",
    "LocalFileTarget",
    "LocalWorkflow",
    "MultiCSVParameter",
    "PylawError",
    "RangeParameter",
    "RemoteDirectoryTarget",
    "RemoteFileTarget",
    "ShiftTask",
    "SiblingFileCollection",
    "SlurmWorkflow",
    "TargetCollection",
    "Task",
    "__version__",
    "register_shift_sources",
    "req_shifts",
]
