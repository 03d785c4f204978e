"""What a job's first run fills in a process, filled by the agent before it listens.

Each child is a copy of the agent: whatever the agent has already done once, no child
does again.  Only what is the same for every job and needs nothing of the node or of a
user: the wrapper template read and parsed, the proxy parser (``cryptography``'s first
certificate, key and signature, ``asn1crypto``'s parsed names) run over a throwaway
proxy made here, from a throwaway CA, and the first ``subprocess`` started.  Nothing is
probed, no credential is read, nothing is kept on disk.
"""

from __future__ import annotations

import subprocess

from pilotid.identity.proxy import parse_proxy
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.payloads.wrapper import load_template

#: The throwaway proxy's names: ``.invalid``, so that it can never be a user's.
WARM_UP_CA = "/DC=invalid/CN=pilotid agent warm-up CA"
WARM_UP_DN = "/DC=invalid/CN=pilotid agent warm-up"
#: Small keys: they only have to be parsed, never trusted.
WARM_UP_BITS = 1024


def fill_caches() -> None:
    """Fill, in this process, the caches a first ``pilotid run`` would fill."""
    load_template()
    ca = TestCA(WARM_UP_CA, bits=WARM_UP_BITS)
    parse_proxy(make_proxy(ca.issue(WARM_UP_DN, bits=WARM_UP_BITS), [ca.certificate],
                           hours=1, bits=WARM_UP_BITS))
    subprocess.run(["/bin/true"], stdin=subprocess.DEVNULL, check=True)
