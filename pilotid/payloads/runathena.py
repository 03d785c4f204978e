"""``RunAthenaPayload``: the adapter for ATLAS's ``runAthena`` transformation.

runAthena runs the user's Athena job over its input files and writes the outputs named in
jobPars.  The jobPars options pilotid reads (everything else is passed through untouched):

``-o OUTPUTS``
    a JSON object mapping each file the job writes to the name it is staged out as,
    ``{"hist.root": "user.alice.12345._00001.hist.root"}``; the stage-out names (the
    values) are outputs to expect.  ATLAS's runAthena takes a Python literal here; pilotid
    reads JSON and never evaluates anything.
"""

from __future__ import annotations

import json
from typing import List, Sequence

from zope.interface import implementer

from pilotid.errors import JobDescriptionError
from pilotid.interfaces import IPayload
from pilotid.payloads.transformation import (
    TransformationPayload,
    checked_output,
    option_value,
)

_EXAMPLE = '{"hist.root": "user.alice.12345.hist.root"}'


@implementer(IPayload)
class RunAthenaPayload(TransformationPayload):
    """Runs ``runAthena`` jobs; expects outFiles and the stage-out names of ``-o``."""

    name = "runAthena"

    def named_outputs(self, args: Sequence[str]) -> List[str]:
        """The stage-out names (values) of the ``-o`` JSON object, each checked."""
        text = option_value(args, "-o")
        if text is None:
            return []
        try:
            mapping = json.loads(text)
        except ValueError:
            mapping = None
        if not isinstance(mapping, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
            raise JobDescriptionError(
                f"field 'jobPars': option -o must be a JSON object mapping each output file "
                f"to its stage-out name, such as {_EXAMPLE} (got {text[:60]!r})")
        for local in mapping:
            checked_output(local, "-o")
        return [checked_output(final, "-o") for final in mapping.values()]
