"""Strategies of the test plugin distribution (see setup.py beside this package).

``PluginSwitcher`` is a working switcher (pilotid's own ``RecordingSwitcher`` under the
name ``recording-plugin``) with a queue setting of its own, ``recording_tag``, as a
third-party switcher declares one; ``NotASwitcher`` is registered as ``broken-plugin`` but
does not provide ``IIdentitySwitcher``, so pilotid must refuse it.
"""

from pilotid.settings import Setting, choice
from pilotid.testing import RecordingSwitcher

#: The plugin's own queue setting: accepted only on a queue whose switcher is this plugin.
RECORDING_TAG = Setting(
    "recording_tag", choice("plain", "verbose"), "plain",
    "How much the recording plugin switcher notes (a test plugin's own setting).")


class PluginSwitcher(RecordingSwitcher):
    """A plugin switcher that records its calls and does not switch."""

    name = "recording-plugin"
    own_settings = (RECORDING_TAG,)

    @property
    def tag(self):
        """The queue's ``recording_tag``, as the plugin reads its own setting."""
        return self.settings.option(RECORDING_TAG)


class NotASwitcher:
    """Looks like a switcher by name only: no ``@implementer``, no methods."""

    name = "broken-plugin"

    def __init__(self, settings=None):
        self.settings = settings
