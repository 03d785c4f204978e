"""The short test summary folds skips that give the same reason into one line with a count
(``fold_skips_by_reason`` in tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SKIPPING = '''\
import pytest

def test_one():
    pytest.skip("the node was not prepared")

def test_two():
    pytest.skip("the node was not prepared")

def test_other():
    pytest.skip("not root")
'''


def summary(tmp_path: Path) -> list:
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / name).write_text(SKIPPING)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "pytest", "-ra", "-p", "tests.conftest",
                           "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]


def test_one_summary_line_per_skip_reason_with_its_count(tmp_path):
    lines = summary(tmp_path)
    assert len(lines) == 2
    assert any(line.startswith("SKIPPED [4] ") and line.endswith("the node was not prepared")
               for line in lines)
    assert any(line.startswith("SKIPPED [2] ") and line.endswith("not root") for line in lines)
