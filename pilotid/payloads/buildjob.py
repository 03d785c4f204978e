"""``BuildJobPayload`` and ``BuildGenPayload``: the adapters for the build transformations.

buildJob (``src/buildjob/buildJob.py`` in ``tmaeno/panda-wnscript``) compiles the user's
Athena sources, buildGen (``src/buildgen/buildGen.py``) the sources of a prun job, into a
library tarball that the job's runAthena or runGen jobs then use.  Both read with
``getopt``:

``-i SOURCES``
    the sources tarball, which the transformation itself downloads from
    ``<sourceURL>/cache/SOURCES``: it is *not* among the job's inFiles, and pilotid expects
    nothing of it.
``-o LIBTGZ``
    the library tarball the transformation writes: an output to stage out.
``--bexec``
    (buildGen) the user's build command, URL-quoted.

Everything else is passed through untouched.
"""

from __future__ import annotations

from typing import List, Sequence

from zope.interface import implementer

from pilotid.interfaces import IPayload
from pilotid.payloads.transformation import TransformationPayload, checked_output, read_options

LONG_VALUES = ("oldPrefix", "newPrefix", "sourceURL", "lfcHost", "envvarFile", "bexec",
               "accessmode", "rootVer", "cmtConfig", "manaVer")


@implementer(IPayload)
class BuildJobPayload(TransformationPayload):
    """Runs ``buildJob`` jobs; expects the library tarball named by ``-o`` in jobPars."""

    name = "buildJob"

    def named_outputs(self, args: Sequence[str]) -> List[str]:
        """The library tarball of ``-o``, checked to stay inside the work directory."""
        library = read_options(args, "iour", LONG_VALUES).get("-o")
        if library is None:
            return []
        return [checked_output(library, "-o")]


@implementer(IPayload)
class BuildGenPayload(BuildJobPayload):
    """Runs ``buildGen`` jobs (prun's build step); as ``BuildJobPayload``."""

    name = "buildGen"
