"""pylaw: make-like, distributed physics analyses on top of Luigi.

Only names listed in ``__all__`` are public; importing pylaw configures nothing. Remote
targets and batch workflows are imported on first use, so ``import pylaw`` stays fast.
"""

from importlib import import_module
from typing import Any

from pylaw.errors import PylawError
from pylaw.parameter import BytesParameter, CSVParameter, DurationParameter, MultiCSVParameter, RangeParameter
from pylaw.shift import NOMINAL, ShiftTask, register_shift_sources, req_shifts
from pylaw.target.collection import SiblingFileCollection, TargetCollection
from pylaw.target.local import LocalDirectoryTarget, LocalFileTarget
from pylaw.task import Task
from pylaw.workflow.base import BaseWorkflow
from pylaw.workflow.local import LocalWorkflow

__version__ = "0.1.0"

#: public names imported lazily: name -> module
_LAZY = {
    "RemoteFileTarget": "pylaw.target.remote.target",
    "RemoteDirectoryTarget": "pylaw.target.remote.target",
    "DCacheTarget": "pylaw.target.remote.target",
    "DCacheDirectoryTarget": "pylaw.target.remote.target",
    "BaseRemoteWorkflow": "pylaw.workflow.remote",
    "SlurmWorkflow": "pylaw.workflow.slurm",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pylaw' has no attribute {name!r}")


__all__ = [
    "NOMINAL",
    "BaseRemoteWorkflow",
    "BaseWorkflow",
    "BytesParameter",
    "CSVParameter",
    "DCacheDirectoryTarget",
    "DCacheTarget",
    "DurationParameter",
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
