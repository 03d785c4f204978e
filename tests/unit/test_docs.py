"""The reference pages agree with the code: every error code, every queue field."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from pilotid.errors import error_codes
from pilotid.queue import field_names

DOCS = Path(__file__).resolve().parents[2] / "docs"


def load_generator(name: str = "generate_errors"):
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_error_table_lists_every_error_code():
    generator = load_generator()
    table = generator.table_in_page((DOCS / "errors.rst").read_text(encoding="utf-8"))
    listed = [int(code) for code in re.findall(r"^   \* - (\d+)$", table, re.MULTILINE)]
    assert listed == list(error_codes()), \
        "docs/errors.rst is out of date: run python docs/generate_errors.py"


def test_error_table_matches_the_error_classes():
    generator = load_generator()
    table = generator.table_in_page((DOCS / "errors.rst").read_text(encoding="utf-8"))
    assert table == generator.error_table(), \
        "docs/errors.rst is out of date: run python docs/generate_errors.py"


def test_queue_reference_describes_every_field():
    page = (DOCS / "queues.rst").read_text(encoding="utf-8")
    rows = set(re.findall(r"^   \* - ``(\w+)``$", page, re.MULTILINE))
    assert set(field_names()) <= rows


def test_queue_reference_is_generated_from_the_declarations():
    generator = load_generator("generate_queues")
    tables = generator.tables_in_page((DOCS / "queues.rst").read_text(encoding="utf-8"))
    assert tables == generator.queue_tables(), \
        "docs/queues.rst is out of date: run python docs/generate_queues.py"


def test_every_page_is_in_the_index_toctree_and_every_entry_exists():
    """What ``sphinx -W`` would refuse: a page no toctree names, or an entry with no page;
    the Markdown pages (read by myst-parser) count as pages."""
    index = (DOCS / "index.rst").read_text(encoding="utf-8")
    entries = set(re.findall(r"^   ([a-z][\w-]*)$", index, re.MULTILINE))
    pages = {p.stem for pattern in ("*.rst", "*.md") for p in DOCS.glob(pattern)} - {"index"}
    assert entries == pages
