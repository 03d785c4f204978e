"""``RunAthenaPayload``: the adapter for ATLAS's ``runAthena`` transformation.

runAthena (``tmaeno/panda-wnscript``, ``src/runathena/runAthena.py``) reads its options with
``getopt``; ``-i``, ``-o``, ``-m``, ``-n``, ``-p``, ``--inputGUIDs`` and a few others are
Python literals (``ast.literal_eval``), ``-j`` is URL-quoted.  pilotid reads the literals
with its bounded parser (so that a bad one fails before the payload starts) and passes every
word on unchanged.  ``-o`` is keyed by output *type*:

* ``'hist'``, ``'TAG'``, ``'BS'``, ``'RDO'``, ``'ESD'``, ``'AOD'``, ``'Stream1'``, ... map to
  the output name;
* ``'IROOT'``, ``'THIST'``, ``'ntuple'``, ``'StreamG'``, ``'Meta'`` map to lists of
  ``(local, output name)`` pairs, ``'AANT'`` to ``(algorithm, stream, output name)`` triples;
* ``'UserData'`` maps to a list of output names.

The output names (a string value, or the last item of each tuple) are the outputs to expect.
"""

from __future__ import annotations

from typing import Any, List, Sequence

from zope.interface import implementer

from pilotid.errors import JobDescriptionError
from pilotid.interfaces import IPayload
from pilotid.payloads.transformation import (
    TransformationPayload,
    checked_output,
    literal_option,
    read_options,
)

#: runAthena's options that take a value (its getopt string, less the flags).
SHORT_VALUES = "lrjiompufan"
SHORT_FLAGS = "bce"
LONG_VALUES = ("oldPrefix", "newPrefix", "lfcHost", "inputGUIDs", "minbiasGUIDs",
               "cavernGUIDs", "addPoolFC", "sourceURL", "mcData", "beamHalo", "beamGas",
               "envvarFile", "dbrFile", "guidBoundary", "collRefName", "liveLog", "dbrRun",
               "accessmode", "copytool", "eventPickTxt", "eventPickSt", "eventPickNum",
               "skipInputByRetry", "tagFileList", "jem-config", "mergeType", "mergeScript")
#: The options runAthena reads with ``ast.literal_eval``.
LITERALS = ("-i", "-o", "-m", "-n", "-p", "--inputGUIDs", "--minbiasGUIDs", "--cavernGUIDs",
            "--beamHalo", "--beamGas", "--guidBoundary")
_EXAMPLE = "{'hist': 'user.alice.12345._00001.hist.root'}"


@implementer(IPayload)
class RunAthenaPayload(TransformationPayload):
    """Runs ``runAthena`` jobs; expects outFiles and the output names of ``-o``."""

    name = "runAthena"

    def named_outputs(self, args: Sequence[str]) -> List[str]:
        """The output names of ``-o`` (every form above), each checked; the other literal
        options are read too, so that a malformed one fails here."""
        options = read_options(args, SHORT_VALUES, LONG_VALUES, SHORT_FLAGS)
        values = {option: literal_option(options, option) for option in LITERALS}
        outputs = values["-o"]
        if outputs is None:
            return []
        if not isinstance(outputs, dict):
            raise JobDescriptionError(
                f"field 'jobPars': option -o must be a dict of output type to output name, "
                f"such as {_EXAMPLE} (got {options['-o'][:60]!r})")
        return [checked_output(name, "-o") for kind, entry in outputs.items()
                for name in _output_names(kind, entry)]


def _output_names(kind: Any, entry: Any) -> List[str]:
    """The output names of one ``-o`` entry: a name, or a list of names or of tuples whose
    last item is the name."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, (list, tuple)):
        names = []
        for item in entry:
            if isinstance(item, str):
                names.append(item)
            elif isinstance(item, (list, tuple)) and item and isinstance(item[-1], str):
                names.append(item[-1])
            else:
                break
        else:
            return names
    raise JobDescriptionError(
        f"field 'jobPars': option -o entry {kind!r} must be an output name or a list of "
        f"names or (..., output name) tuples, not {entry!r:.60}")
