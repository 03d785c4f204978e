"""Sphinx configuration for pilotid's documentation."""

project = "pilotid"
author = "the pilotid developers"
release = "0.1.0"
extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
