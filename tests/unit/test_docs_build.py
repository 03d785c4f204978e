"""``make docs``: the Sphinx build, Markdown pages included, passes with warnings as errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_build_without_a_warning_and_include_the_markdown_pages(tmp_path):
    pytest.importorskip("sphinx", reason="the docs extra is not installed (make docs does it)")
    pytest.importorskip("myst_parser", reason="the docs extra is not installed (make docs does it)")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", str(DOCS),
                           str(tmp_path / "html")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for page in ("security", "performance"):
        assert "<table" in (tmp_path / "html" / f"{page}.html").read_text(encoding="utf-8")
