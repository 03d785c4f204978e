"""The gLExec switcher (registry name ``glexec``); see ``switcher``."""

from pilotid.strategies.glexec.switcher import *  # noqa: F401,F403  (split next)
