"""Plugin stand-ins that the registry tests point synthetic entry points at."""

from __future__ import annotations

from pilotid.errors import ConfigurationError
from pilotid.testing import RecordingSwitcher


class GoodSwitcher(RecordingSwitcher):
    """A working plugin switcher registered as 'good'."""

    name = "good"


class MisnamedSwitcher(RecordingSwitcher):
    """Provides the interface but declares a name other than the one it is registered as."""

    name = "something-else"


class NotASwitcher:
    """Declares nothing and has none of the methods."""

    name = "not-a-switcher"


def builds_a_non_switcher(settings):
    """A factory function whose product does not provide the interface."""
    return NotASwitcher()


def builds_misnamed(settings):
    """A factory function whose product carries the wrong name."""
    return RecordingSwitcher(settings, name="wrong")


def crashes(settings):
    """A factory that fails in a way that is no pilotid error."""
    raise RuntimeError("plugin bug")


def refuses(settings):
    """A factory that refuses the settings with a ConfigurationError of its own."""
    raise ConfigurationError(f"queue {settings.name!r}: this plugin needs glexec_path")


NOT_CALLABLE = 42
