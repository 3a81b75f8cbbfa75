"""The grid workflow of the end-to-end tests (grid_tasks.GridBody), on a CREAM CE: the CLI double's.

Outputs go to the test suite's real XRootD (``[storage:xrd]``): a CREAM job shares no
file system with the submitter.
"""

from __future__ import annotations

import pylaw
from pylaw.workflow.glite import GliteWorkflow
from pylaw.workflow.local import LocalWorkflow
from tests.workflow.grid_tasks import GridBody


# the ignore: LocalWorkflow.workflow_proxy_cls is inferred as type[LocalWorkflowProxy] (invariant)
class GliteSquare(GridBody, pylaw.Task, LocalWorkflow, GliteWorkflow):  # type: ignore[misc]
    pass
