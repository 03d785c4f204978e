"""Sphinx configuration for pilotid's documentation."""

project = "pilotid"
author = "the pilotid developers"
release = "0.1.0"
# myst_parser: performance.md and security.md are Markdown (tables and all), read as they are.
extensions = ["sphinx.ext.autodoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
