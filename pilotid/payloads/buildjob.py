"""``BuildJobPayload``: the adapter for ATLAS's ``buildJob`` transformation.

buildJob compiles the user's sources into a library tarball that the job's runAthena
subjobs then use.  The jobPars options pilotid reads (everything else is passed through
untouched):

``-o LIBTGZ``
    the library tarball buildJob writes: an output to stage out.
"""

from __future__ import annotations

from typing import List, Sequence

from zope.interface import implementer

from pilotid.interfaces import IPayload
from pilotid.payloads.transformation import (
    TransformationPayload,
    checked_output,
    option_value,
)


@implementer(IPayload)
class BuildJobPayload(TransformationPayload):
    """Runs ``buildJob`` jobs; expects the library tarball named by ``-o`` in jobPars."""

    name = "buildJob"

    def named_outputs(self, args: Sequence[str]) -> List[str]:
        """The library tarball of ``-o``, checked to stay inside the work directory."""
        library = option_value(args, "-o")
        if library is None:
            return []
        return [checked_output(library, "-o")]
