"""Sphinx configuration of the pylaw documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import pylaw

project = "pylaw"
author = "the pylaw authors"
copyright = "the pylaw authors, BSD-3-Clause"
version = release = pylaw.__version__

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
templates_path: list[str] = []
exclude_patterns = ["_build"]
nitpicky = False

html_theme = "alabaster"
html_theme_options = {"description": "make-like, distributed physics analyses on Luigi"}

autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# luigi parameters are class attributes whose reprs carry memory addresses; show names only
autodoc_typehints = "description"
