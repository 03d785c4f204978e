"""``RunGenPayload``: the adapter for PanDA's ``runGen`` (prun's transformation).

runGen (``tmaeno/panda-wnscript``, ``src/rungen/runGen.py``) reads its options with
``getopt``: ``-i``, ``-o``, ``--inputGUIDs`` and ``--inMap`` are Python literals
(``ast.literal_eval``); ``-p`` is the user's command, URL-quoted, in which runGen fills in
``%IN`` and the ``--inMap`` stream names; ``-j`` names the user's script.  ``-o`` maps the
file the command writes (a name, a pattern holding ``*`` that runGen archives, or
``regex|...``) to its output name.  The output names are the outputs to expect (a name
itself given as ``regex|...`` is left to outFiles); the local names are not checked as paths,
since they may be patterns.
"""

from __future__ import annotations

from typing import List, Sequence

from zope.interface import implementer

from pilotid.errors import JobDescriptionError
from pilotid.interfaces import IPayload
from pilotid.payloads.transformation import (
    TransformationPayload,
    checked_output,
    literal_option,
    read_options,
)

SHORT_VALUES = "iorjlpua"
LONG_VALUES = ("oldPrefix", "newPrefix", "sourceURL", "lfcHost", "envvarFile", "inputGUIDs",
               "liveLog", "inMap", "dbrFile", "dbrRun", "accessmode", "skipInputByRetry",
               "writeInputToTxt", "rootVer", "jem-config", "cmtConfig", "mergeType",
               "mergeScript", "manaVer", "fileToSave", "fileToLoad")
LITERALS = ("-i", "-o", "--inputGUIDs", "--inMap")
REGEX_PREFIX = "regex|"
_EXAMPLE = "{'out.root': 'user.alice.12345._000001.out.root'}"


@implementer(IPayload)
class RunGenPayload(TransformationPayload):
    """Runs ``runGen`` jobs; expects outFiles and the output names of ``-o``."""

    name = "runGen"

    def named_outputs(self, args: Sequence[str]) -> List[str]:
        """The output names (values) of the ``-o`` dict, each checked; ``-i``,
        ``--inputGUIDs`` and ``--inMap`` are read too, so that a malformed one fails here."""
        options = read_options(args, SHORT_VALUES, LONG_VALUES)
        values = {option: literal_option(options, option) for option in LITERALS}
        outputs = values["-o"]
        if outputs is None:
            return []
        if not isinstance(outputs, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in outputs.items()):
            raise JobDescriptionError(
                f"field 'jobPars': option -o must be a dict of the file the command writes "
                f"to its output name, such as {_EXAMPLE} (got {options['-o'][:60]!r})")
        return [checked_output(name, "-o") for name in outputs.values()
                if not name.startswith(REGEX_PREFIX)]
