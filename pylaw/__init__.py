"""pylaw: make-like, distributed physics analyses on top of Luigi.

Only names listed in ``__all__`` are public; importing pylaw configures nothing.
"""

from pylaw.errors import PylawError
from pylaw.parameter import BytesParameter, CSVParameter, DurationParameter, MultiCSVParameter, RangeParameter
from pylaw.shift import NOMINAL, ShiftTask, register_shift_sources, req_shifts
from pylaw.target.collection import SiblingFileCollection, TargetCollection
from pylaw.target.local import LocalDirectoryTarget, LocalFileTarget
from pylaw.task import Task
from pylaw.workflow.base import BaseWorkflow
from pylaw.workflow.local import LocalWorkflow

__version__ = "0.1.0"

__all__ = [
    "NOMINAL",
    "BaseWorkflow",
    "BytesParameter",
    "CSVParameter",
    "DurationParameter",
    "LocalDirectoryTarget",
    "LocalFileTarget",
    "LocalWorkflow",
    "MultiCSVParameter",
    "PylawError",
    "RangeParameter",
    "ShiftTask",
    "SiblingFileCollection",
    "TargetCollection",
    "Task",
    "__version__",
    "register_shift_sources",
    "req_shifts",
]
