"""``pylaw graph MODULE TASK [params] [--output FILE.svg|png]``: the dependency graph, coloured by status.

One node per task (Graphviz's node name, the ``<title>`` of its SVG group, is the task
id), an edge from each requirement to the task needing it, so data flows downwards. A
workflow is one node (drawn as a stack) with its branch counts and job states, never one
node per branch: a graph of 10,000 branches says nothing a count does not. Colours are
the states of :mod:`pylaw.monitor`: complete, partial, missing, running, failed,
waiting. Without ``--output`` the DOT text goes to standard output (no Graphviz needed);
with it, Graphviz's ``dot`` renders the file, written under a temporary name and renamed
into place, so a failed rendering never leaves half an image.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from typing import IO

import luigi

from pylaw import monitor
from pylaw.errors import GraphvizMissingError, UsageError
from pylaw.interactive import describe_keys

#: fill colour per node state (light tones: black text stays readable)
FILL = {
    "complete": "#9fdf9f", "partial": "#ffe08a", "missing": "#eeeeee", "running": "#8fd3f4",
    "failed": "#f4a3a3", "waiting": "#dcc6f0", "no": "#ffffff",
}
FORMATS = ("svg", "png")
#: seconds Graphviz may take (a few hundred nodes render in well under one)
RENDER_TIMEOUT = 60.0


def quote(text: str) -> str:
    """A DOT string literal: parameter values may hold quotes, backslashes or newlines."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


#: parameters never shown in a node (the same for every branch of a workflow, or noise)
HIDDEN = ("branch", "branches")
#: parameters per node at most (the rest is counted)
MAX_PARAMS = 5


def common_params(report: monitor.Report) -> dict[str, str]:
    """Parameters that several tasks have, all with one value: shown once, in the graph's label."""
    values: dict[str, list[str]] = {}
    for status in report.tasks.values():
        for key, value in status.task.to_str_params(only_significant=True).items():
            values.setdefault(key, []).append(value)
    return {key: found[0] for key, found in values.items()
            if len(found) > 1 and len(set(found)) == 1 and key not in HIDDEN}


def node_label(status: monitor.TaskStatus, common: dict[str, str] | None = None) -> str:
    task = status.task
    params = task.to_str_params(only_significant=True)
    shown = [f"{k}={v}" for k, v in params.items() if k not in HIDDEN and k not in (common or {})]
    lines = [task.get_task_family(), *shown[:MAX_PARAMS]]
    if len(shown) > MAX_PARAMS:
        lines.append(f"... {len(shown) - MAX_PARAMS} more")
    b = status.branches
    if b is not None:
        lines.append(f"{status.workflow_type}: {b.done}/{b.total} done"
                     + "".join(f", {n} {word}" for word, n in (("running", b.running), ("failed", b.failed),
                                                              ("pending", b.pending)) if n))
        for submission in status.submissions:
            counts = ", ".join(f"{n} {state}" for state, n in sorted(submission.counts().items()))
            lines.append(f"jobs: {counts or 'none'}")
        if b.missing and b.done:
            lines.append(f"missing: {describe_keys(b.missing)[:40]}")
    elif status.state == "waiting":
        lines.append(f"waiting for {len(status.waiting_for)} task(s)")
    else:
        lines.append(status.state if status.state != "partial" else f"partial {status.done}/{status.total}")
    return "\n".join(lines)


def to_dot(report: monitor.Report) -> str:
    """The report as a DOT digraph."""
    common = common_params(report)
    title = ", ".join(f"{k}={v}" for k, v in common.items())
    lines = ["digraph pylaw {", f'  graph [rankdir=TB, fontname="Helvetica", labelloc=t, label={quote(title)}];',
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
             '  edge [color="#555555"];']
    for status in report.tasks.values():
        shape = ', shape=box3d, style="filled"' if status.workflow_type is not None else ""
        lines.append(f"  {quote(status.task_id)} [label={quote(node_label(status, common))}, "
                     f"fillcolor={quote(FILL[status.activity])}, tooltip={quote(status.task_id)}{shape}];")
    for status in report.tasks.values():
        for requirement in status.requires:
            if requirement in report.tasks:
                lines.append(f"  {quote(requirement)} -> {quote(status.task_id)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(dot: str, path: str) -> None:
    """Write ``dot`` rendered by Graphviz to ``path`` (its extension names the format), atomically."""
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise UsageError(f"--output {path}: give a file ending in .svg or .png (or no --output for DOT text)")
    executable = shutil.which("dot")
    if executable is None:
        raise GraphvizMissingError(f"--output {path} needs Graphviz's 'dot', which is not on PATH: install "
                                   f"Graphviz (Debian: apt-get install graphviz), or leave out --output to get "
                                   f"the DOT text and render it elsewhere")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"--output {path}: the directory {directory} does not exist")
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".pylaw-tmp", dir=directory)
    os.close(fd)
    try:
        done = subprocess.run([executable, f"-T{fmt}", "-o", temporary], input=dot, text=True,
                              capture_output=True, timeout=RENDER_TIMEOUT)
        if done.returncode != 0:
            raise UsageError(f"Graphviz could not render {path}: {done.stderr.strip() or f'exit {done.returncode}'}")
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 would hide the picture from others
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def show(task: luigi.Task, out: IO[str], depth: int = -1, refresh: bool = False, output: str = "") -> int:
    """DOT text to ``out``, or the rendered file at ``output``; the exit code (0)."""
    dot = to_dot(monitor.collect(task, depth, refresh))
    if not output:
        out.write(dot)
        return 0
    render(dot, output)
    print(f"wrote {output}", file=out)
    return 0
