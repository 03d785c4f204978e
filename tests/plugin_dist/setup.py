"""A tiny distribution that registers strategies through pilotid's entry-point groups.

Installed into the test virtualenv by `make test`; the registry tests load it for real.
"""
from setuptools import setup

setup(
    name="pilotid-testplugin",
    version="0.0.1",
    packages=["pilotid_testplugin"],
    entry_points={
        "pilotid.switchers": [
            "recording-plugin = pilotid_testplugin:PluginSwitcher",
            "broken-plugin = pilotid_testplugin:NotASwitcher",
        ],
    },
)
