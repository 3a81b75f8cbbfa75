"""Sphinx configuration of the pylaw documentation.

Build: ``sphinx-build -n -W -b html docs docs/_build/html``: nitpicky, warnings are errors,
so every cross-reference must resolve.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.abspath(".."))

import pylaw

project = "pylaw"
author = "the pylaw authors"
copyright = "the pylaw authors, BSD-3-Clause"
version = release = pylaw.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
templates_path: list[str] = []
exclude_patterns = ["_build"]

html_theme = "alabaster"
html_theme_options = {"description": "make-like, distributed physics analyses on Luigi"}

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# luigi parameters are class attributes whose reprs carry memory addresses; show names only
autodoc_typehints = "description"

nitpicky = True
# Objects of other projects. Their documentation would be linked through intersphinx, which
# needs the network (docs.python.org, luigi.readthedocs.io); the docs are built offline, so
# these names, which appear in pylaw's signatures and base classes, cannot resolve. Every
# entry is checked to exist (below), so a misspelt name cannot hide here. pylaw's own
# names are never ignored.
EXTERNAL = {
    "abc": ["ABC"],
    "collections": ["Counter"],
    "collections.abc": ["Callable", "Hashable", "Iterable", "Iterator", "Mapping", "Sequence"],
    "concurrent.futures": ["ThreadPoolExecutor"],
    "contextlib": ["AbstractContextManager"],
    "enum": ["Enum"],
    "importlib.metadata": ["Distribution"],
    "io": ["RawIOBase"],
    "pathlib": ["Path"],
    "logging": ["Formatter", "LogRecord"],
    "random": ["Random"],
    "luigi": ["Parameter", "Task"],
    "luigi.cmdline_parser": ["CmdlineParser"],
    "luigi.execution_summary": ["LuigiStatusCode"],
    "luigi.parameter": ["Parameter", "ParameterVisibility",
                        # in the signature pylaw's parameter types inherit from luigi.Parameter
                        "ConfigPath", "T", "_NoValueType"],
    "luigi.target": ["Target"],
    "luigi.task": ["Config", "Task"],
    "luigi.task_register": ["Register"],
}
for _module, _names in EXTERNAL.items():
    _missing = [n for n in _names if not hasattr(importlib.import_module(_module), n)]
    assert not _missing, f"conf.py EXTERNAL: {_module} has no {_missing}"
nitpick_ignore = [("py:class", f"{module}.{name}") for module, names in EXTERNAL.items() for name in names]


def imported_names(module: str) -> dict[str, str]:
    """``{name: "package.module.name"}`` for every ``from ... import name`` of a pylaw module."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return {}
    found = {}
    for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    return found


def qualify(target: str, module: str | None) -> str:
    """An unqualified name in a pylaw module's annotations, as that module imports it.

    With ``from __future__ import annotations``, one annotation that cannot be evaluated
    (a name imported only under ``if TYPE_CHECKING:``, to avoid an import cycle) makes
    autodoc print all annotations of that function as written: ``RetryPolicy``, not
    ``pylaw.target.remote.retry.RetryPolicy``.
    """
    if "." in target or not module or not module.startswith("pylaw"):
        return target
    return imported_names(module).get(target, target)


def canonical_name(target: str) -> str | None:
    """``pylaw.Task.req`` -> ``pylaw.task.Task.req``: where a re-exported pylaw name is documented."""
    parts = target.split(".")
    if parts[0] != "pylaw":
        return None
    for cut in range(len(parts) - 1, 0, -1):  # the longest importable module prefix
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        obj = getattr(module, parts[cut], None)
        home, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        if not home or not qualname or f"{home}.{qualname}" == ".".join(parts[:cut + 1]):
            return None  # not a re-export (or not an object with a home)
        return ".".join([home, qualname, *parts[cut + 1:]])
    return None


def resolve_pylaw_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve ``:class:`pylaw.Task``` (the name analysts import) to ``pylaw.task.Task``.

    Also unqualified names in annotations (see :func:`qualify`). The reference keeps its
    text; only its target becomes the documented object. A name that is not a re-export,
    or whose home is not documented, still fails the build.
    """
    if node.get("refdomain") != "py":
        return None
    target = qualify(node["reftarget"], node.get("py:module"))
    if target.split(".")[0] != "pylaw":
        # another project's name, written unqualified in an annotation: judged by its full name
        return contnode if (f"py:{node['reftype']}", target) in nitpick_ignore else None
    canonical = canonical_name(target) or target
    if canonical == node["reftarget"]:
        return None
    return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, node["reftype"], canonical,
                                             node, contnode)


def setup(app: Any) -> None:
    app.connect("missing-reference", resolve_pylaw_name)
