"""The reference pages stay complete: every module on the API page, every config key and
environment variable pylaw reads on the configuration page.

The keys are collected from the code, not from a list kept by hand: the ``luigi.Config``
sections defined in pylaw, ``get_config().get("section", "key")`` calls, and every
``PYLAW_*`` name in the package (Python and the job wrapper). A new key without docs fails here.
"""

from __future__ import annotations

import ast
import configparser
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

import docutils.core
import docutils.nodes
import luigi
import luigi.retcodes
import pytest

import pylaw

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pylaw"
DOCS = ROOT / "docs"
CONFIG_METHODS = {"get", "getint", "getfloat", "getboolean", "has_option"}


def public_modules() -> list[str]:
    """Every module of the package whose dotted name has no part starting with ``_``."""
    names = ["pylaw"] + [m.name for m in pkgutil.walk_packages(pylaw.__path__, "pylaw.")]
    return sorted(n for n in names if not any(part.startswith("_") for part in n.split(".")))


def documented_modules() -> set[str]:
    text = (DOCS / "api.rst").read_text()
    return set(re.findall(r"^\.\. automodule:: (\S+)\s*$", text, re.M))


def test_every_public_module_is_on_the_api_page():
    missing = sorted(set(public_modules()) - documented_modules())
    assert not missing, f"docs/api.rst has no `.. automodule::` for {missing}"


def test_the_api_page_names_only_existing_modules():
    stale = sorted(n for n in documented_modules() if importlib.util.find_spec(n) is None)
    assert not stale, f"docs/api.rst documents modules that do not exist: {stale}"


def test_module_walk_sees_the_package():
    """The walk must find nested modules (a broken walk would make the tests above vacuous)."""
    found = public_modules()
    assert {"pylaw.workflow.slurm", "pylaw.job.poll", "pylaw.target.remote.gfal", "pylaw.cli.main"} <= set(found)
    assert len(found) >= 40


# -- configuration -------------------------------------------------------------------


def config_sections() -> dict[str, set[str]]:
    """``{section: keys}`` of every ``luigi.Config`` class defined in pylaw."""
    for name in public_modules():
        importlib.import_module(name)
    sections: dict[str, set[str]] = {}
    stack = list(luigi.Config.__subclasses__())
    while stack:
        cls = stack.pop()
        stack += cls.__subclasses__()
        if cls.__module__.split(".")[0] == "pylaw":
            sections.setdefault(cls.get_task_family(), set()).update(n for n, _ in cls.get_params())
    return sections


def direct_config_reads() -> set[tuple[str, str]]:
    """``(section, key)`` of ``get_config().get("section", "key")`` calls (also via a name bound to it)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        bound = {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign) and is_get_config(node.value)
                 for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in CONFIG_METHODS and len(node.args) >= 2):
                continue
            receiver = node.func.value
            if not (is_get_config(receiver) or (isinstance(receiver, ast.Name) and receiver.id in bound)):
                continue
            section, key = node.args[:2]
            if isinstance(section, ast.Constant) and isinstance(key, ast.Constant):
                found.add((section.value, key.value))
    return found


def is_get_config(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "get_config"


def environment_variables() -> set[str]:
    """Every ``PYLAW_*`` name in the package: string constants in Python, ``$PYLAW_*`` in shell."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.update(re.findall(r"\bPYLAW_[A-Z0-9_]+\b", node.value))
    for path in PACKAGE.rglob("*.sh"):
        names.update(re.findall(r"\$\{?(PYLAW_[A-Z0-9_]+)", path.read_text()))
    # XRootD's client variables, whose defaults pylaw sets (names built from the settings)
    from pylaw.target.remote.xrootd import CLIENT_SETTINGS

    return names | {f"XRD_{key.upper()}" for key in CLIENT_SETTINGS}


def page_doctree() -> docutils.nodes.document:
    return docutils.core.publish_doctree(
        (DOCS / "configuration.rst").read_text(),
        settings_overrides={"report_level": 5, "halt_level": 5, "file_insertion_enabled": False})


def page_terms() -> dict[str, set[str]]:
    """``{section title: literals of its definition-list terms}`` of docs/configuration.rst."""
    terms: dict[str, set[str]] = {}
    for section in page_doctree().findall(docutils.nodes.section):
        title = section[0].astext()
        for term in section.findall(docutils.nodes.term):
            if term.parent.parent.parent is section:  # this section's own lists, not a subsection's
                terms.setdefault(title, set()).update(lit.astext() for lit in term.findall(docutils.nodes.literal))
    return terms


def section_terms(terms: dict[str, set[str]], section: str) -> set[str]:
    titles = [title for title in terms if f"[{section}]" in title]
    assert titles, f"docs/configuration.rst has no section titled ``[{section}]``"
    return set().union(*(terms[title] for title in titles))


def test_collectors_see_the_code():
    """Each collector finds what is known to be there (else the page test would pass vacuously)."""
    assert {"store", "modules", "index_file"} <= config_sections()["pylaw"]
    assert {"partition", "arrays"} <= config_sections()["slurm"]
    assert ("pylaw", "store") in direct_config_reads()
    assert {"PYLAW_STORE", "PYLAW_INDEX", "PYLAW_BRANCHES", "PYLAW_VENV"} <= environment_variables()


@pytest.mark.parametrize("section", sorted(config_sections()))
def test_every_key_of_a_config_section_is_documented(section):
    documented = section_terms(page_terms(), section)
    missing = sorted(config_sections()[section] - documented)
    assert not missing, f"docs/configuration.rst, section [{section}], does not describe {missing}"


def test_every_key_read_directly_is_documented():
    terms = page_terms()
    missing = sorted(f"[{s}] {k}" for s, k in direct_config_reads() if k not in section_terms(terms, s))
    assert not missing, f"docs/configuration.rst does not describe {missing}"


def test_every_storage_key_is_documented():
    """``[storage:NAME]`` sections have a name chosen by the user; their keys are listed in code."""
    from pylaw.target.remote.config import OPERATIONS, known_keys

    documented = section_terms(page_terms(), "storage:NAME")
    # the per-operation bases are one entry on the page, ``base_<operation>``
    expected = (known_keys() - {f"base_{op}" for op in OPERATIONS}) | {"base_<operation>"}
    missing = sorted(expected - documented)
    assert not missing, f"docs/configuration.rst, section [storage:NAME], does not describe {missing}"


def test_every_environment_variable_is_documented():
    terms = page_terms()
    documented = set().union(*(v for title, v in terms.items() if "nvironment" in title))
    missing = sorted(environment_variables() - documented)
    assert not missing, f"docs/configuration.rst does not describe the environment variables {missing}"


def test_retcode_block_is_what_pylaw_init_writes():
    """``luigi --module`` exits 0 on failures unless [retcode] is set: the page shows the block to set."""
    from pylaw.cli.init import RETCODES

    blocks = [block.astext() for block in page_doctree().findall(docutils.nodes.literal_block)
              if "[retcode]" in block.astext()]
    assert blocks, "docs/configuration.rst shows no [retcode] block"
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"))
    parser.read_string(blocks[0])
    assert dict(parser["retcode"]) == {key: str(value) for key, value in RETCODES.items()}
    # every code Luigi knows is set: one left out would exit 0 for that case
    assert set(parser["retcode"]) == {name for name, _ in luigi.retcodes.retcode.get_params()}
    assert set(section_terms(page_terms(), "retcode")) >= set(RETCODES)
