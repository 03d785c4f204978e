"""Two plugin switchers with a bug, for the ``internal_error`` rows of docs/faults.rst.

Both are the real sudo switcher with one step broken as a plugin's could be: one raises
``PermissionError`` in ``launch`` before anything started, the other ``RuntimeError`` in
``explain`` once the payload has run.  ``install_fault_plugin`` puts this module and its
entry points (``pilotid.switchers``) on the pilot's ``PYTHONPATH``, as a third party's
installed distribution would be.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pilotid.strategies.sudo import SudoSwitcher

LAUNCH_BUG = "fault-launch-bug"
EXPLAIN_BUG = "fault-explain-bug"


class LaunchBugSwitcher(SudoSwitcher):
    """sudo, but ``launch`` raises ``PermissionError`` (a plugin bug, not a ``PilotidError``)."""

    name = LAUNCH_BUG

    def launch(self, argv, credential, account, workdir, logs):
        """Fail as a careless plugin would."""
        raise PermissionError(13, "Permission denied (fault plugin)", str(workdir))


class ExplainBugSwitcher(SudoSwitcher):
    """sudo, but ``explain`` raises ``RuntimeError`` after the payload ran."""

    name = EXPLAIN_BUG

    def explain(self, returncode, marker):
        """Fail as a careless plugin would."""
        raise RuntimeError("fault plugin: explain is broken")


def install_fault_plugin(site: Path) -> None:
    """Install this module as ``pilotid_faultplugin`` with its entry points under ``site``."""
    if (site / "pilotid_faultplugin.py").exists():
        return
    shutil.copy(__file__, site / "pilotid_faultplugin.py")
    info = site / "pilotid_faultplugin-0.0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pilotid-faultplugin\n"
                                   "Version: 0.0.1\n")
    (info / "entry_points.txt").write_text(
        "[pilotid.switchers]\n"
        f"{LAUNCH_BUG} = pilotid_faultplugin:LaunchBugSwitcher\n"
        f"{EXPLAIN_BUG} = pilotid_faultplugin:ExplainBugSwitcher\n")
    for path in (site / "pilotid_faultplugin.py", info, *info.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
