"""Strategies of the test plugin distribution (see setup.py beside this package).

``PluginSwitcher`` is a working switcher (pilotid's own ``RecordingSwitcher`` under the
name ``recording-plugin``); ``NotASwitcher`` is registered as ``broken-plugin`` but does
not provide ``IIdentitySwitcher``, so pilotid must refuse it.
"""

from pilotid.testing import RecordingSwitcher


class PluginSwitcher(RecordingSwitcher):
    """A plugin switcher that records its calls and does not switch."""

    name = "recording-plugin"


class NotASwitcher:
    """Looks like a switcher by name only: no ``@implementer``, no methods."""

    name = "broken-plugin"

    def __init__(self, settings=None):
        self.settings = settings
