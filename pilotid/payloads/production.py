"""``ProductionPayload``: the generic adapter for the production transformations a site installs.

Production jobs (``prodSourceLabel`` ``managed``, ``test``, ...) name a transformation of
the experiment's release (``Reco_tf.py``, ``Sim_tf.py``, ``AtlasG4_trf.py``) with
``key=value`` or ``--option value`` words.  pilotid knows none of their options: this
adapter runs ``<trf> <words>`` (the words of jobPars unchanged, in order) and expects the
job's outFiles less its logFile.

It accepts a job only where its transformation is a name (not a URL: a production
transformation comes with the site's software, not from the dispatcher) and is installed in
one of the queue's ``transformation_dirs`` (never a stand-in).  List it last in the queue's
``payloads``, so that the adapters that know their transformation come first.
"""

from __future__ import annotations

from zope.interface import implementer

from pilotid.errors import TransformationNotFoundError
from pilotid.interfaces import IPayload
from pilotid.payloads.job import JobSpec
from pilotid.payloads.transformation import TransformationPayload, locate_transformation


@implementer(IPayload)
class ProductionPayload(TransformationPayload):
    """Runs any transformation installed in the queue's ``transformation_dirs`` as
    ``<trf> <jobPars words>``; expects outFiles less the log."""

    name = "production"

    def accepts(self, job: JobSpec) -> bool:
        """True where the job names a transformation (not a URL) installed in the queue's
        ``transformation_dirs``."""
        if "://" in job.transformation or not self.settings.transformation_dirs:
            return False
        try:
            locate_transformation(job.transformation, self.settings.transformation_dirs)
        except TransformationNotFoundError:
            return False
        return True
