"""jobPars split as bash splits it: checked against bash itself."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotid.errors import JobDescriptionError
from pilotid.payloads.shellwords import shell_words


def bash_words(text: str, cwd: Path) -> List[str]:
    """The words bash gives a command whose arguments are ``text`` (run in ``cwd``)."""
    script = 'words() { for w in "$@"; do printf "%s\\0" "$w"; done; }; words ' + text
    done = subprocess.run(["bash", "-c", script],
                          cwd=cwd, capture_output=True, timeout=10, check=True)
    return [w.decode("utf-8", "surrogateescape") for w in done.stdout.split(b"\0")[:-1]]


@pytest.mark.parametrize("text", [
    "-i \"['a.root', 'b.root']\" -o \"{'hist': 'x.root'}\" -j %20a%3Db",
    "a\\ b 'c d' \"e \\\" \\\\ \\x \\$ f\" g\\\nh i \\\n j # comment",
    "x=1 '' \"\" a#b *.root [x] ? 'it'\"'\"'s' a$ \"$\" \"$'x'\" $% \\",
    "maxEvents=2 --ignoreerrors=True DBRelease=DBRelease-24.6.1.tar.gz \t\n",
    "--preExec 'rec.doTrigger=False; from X import y' --postExec \"a=[1,2]\"",
])
def test_real_shapes_split_as_bash_splits_them(text, tmp_path):
    assert shell_words(text) == bash_words(text, tmp_path)


@pytest.mark.parametrize("text", [
    "$HOME", "${HOME}", "$(id)", "`id`", "\"$USER\"", "\"`id`\"", "$'\\n'", "$[1+1]",
    "a;b", "a&b", "a|b", "a>b", "a<b", "(a)", "a\nb", "~", "~/x", "{a,b}", "x{1..3}",
    "'open", "\"open",
])
def test_what_only_a_shell_could_do_is_refused(text):
    with pytest.raises(JobDescriptionError, match="field 'jobPars'"):
        shell_words(text)


shellish = st.text(alphabet="ab '\"\\\n\t#$`{},.*?[]~=-%;|&()<>xé", max_size=40)


@settings(max_examples=300, deadline=None)
@given(shellish)
def test_any_text_is_refused_or_split_exactly_as_bash_splits_it(tmp_path_factory, text):
    try:
        words = shell_words(text)
    except JobDescriptionError:
        return
    assert words == bash_words(text, tmp_path_factory.mktemp("empty"))
