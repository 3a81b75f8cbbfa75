"""Run one branch of a workflow inside a batch job: ``python -m pylaw.job.branch``.

Arguments are those of ``python -m luigi`` (``--module M Task --param value ...
--branch=N``). The branch runs with a local scheduler, with its missing requirements
(which a ``--pilot`` workflow did not run beforehand), and then its outputs are checked,
because Luigi itself counts a ``run()`` that wrote nothing as a success. Exit codes
(read by the job wrapper): 0 success, 4 the task failed, 5 it ran but outputs are missing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import luigi
from luigi.cmdline_parser import CmdlineParser
from luigi.task import flatten

EXIT_OK = 0
EXIT_TASK = 4
EXIT_OUTPUTS = 5


def main(argv: Sequence[str]) -> int:
    args = [*argv, "--local-scheduler", "--no-lock"]
    with CmdlineParser.global_instance(args) as parser:
        task = parser.get_task_obj()
        result = luigi.build([task], local_scheduler=True, no_lock=True, detailed_summary=True)
        if not result.scheduling_succeeded:
            print(f"pylaw-job: {task} failed: {result.summary_text}", file=sys.stderr)
            return EXIT_TASK
        missing = [str(target) for target in flatten(task.output()) if not target.exists()]
        if missing:
            print(f"pylaw-job: {task} ran but did not produce {', '.join(missing[:5])}", file=sys.stderr)
            return EXIT_OUTPUTS
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
