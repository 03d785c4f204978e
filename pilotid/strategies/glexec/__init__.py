"""The gLExec switcher (registry name ``glexec``), in five modules.

``binary``: where gLExec is and the environment it is called with; ``exitcodes``: its
exit statuses as pilotid errors; ``mapping``: which account it maps a proxy to (``id``
through it); ``diagnosis``: what ``pilotid probe`` shows about it;
``switcher``: ``GlexecSwitcher``, its queue settings and ``RetryPolicy``.  The names
below are the package's public face (the registry's ``pilotid.strategies.glexec:
GlexecSwitcher``, plugin authors, tests); patch a name where it is looked up, in its
module.
"""

from pilotid.strategies.glexec.binary import glexec_environment, locate_glexec
from pilotid.strategies.glexec.mapping import parse_id_output
from pilotid.strategies.glexec.switcher import (
    TARGET_PROXY_NAME,
    GlexecSwitcher,
    ProbeCache,
    RetryPolicy,
)

__all__ = [
    "TARGET_PROXY_NAME", "GlexecSwitcher", "ProbeCache", "RetryPolicy", "glexec_environment",
    "locate_glexec", "parse_id_output",
]
