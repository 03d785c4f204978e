"""Issue 13, items 8 and 9, on the real node (real sudo, the real ``pilotid-alice``): names
the payload made reach the pilot's log escaped; the modes it left are taken away or
reported."""

from __future__ import annotations

import stat

from tests.system import node

FAKE_LINE = "pilotid: INFO job 1: succeeded"


def payload(scene, body: str) -> None:
    scene.transformation("runAthena", "#!/bin/bash\n" + body + "\n")


def test_a_payload_made_name_cannot_add_a_line_to_the_pilots_log(scene):
    """A file named with a newline and a fake result line, unreadable by the pilot, is
    named in reclaim's warning: escaped, on the warning's own line."""
    payload(scene, f"name=$'evil\\n{FAKE_LINE}'; echo x > \"$name\"; chmod 000 \"$name\"")
    run = scene.run()
    assert run.outcome == "succeeded", run.why()
    assert "evil\\npilotid: INFO job 1: succeeded" in run.stderr, run.why()
    assert not [line for line in run.stderr.splitlines() if line.startswith(FAKE_LINE)]


def test_the_payloads_setuid_and_world_writable_files_lose_those_bits(scene):
    """A setuid copy of bash (a door into the target's account for the next job's user)
    and a file writable by all stay in the work directory without those bits."""
    payload(scene, "cp /bin/bash sbash; chmod 4755 sbash; cp /bin/bash gbash; "
                   "chmod 2755 gbash; echo x > open.txt; chmod 0666 open.txt")
    run = scene.run()
    assert run.outcome == "succeeded", run.why()
    for name in ("sbash", "gbash"):
        assert not run.workdir.joinpath(name).stat().st_mode & (stat.S_ISUID | stat.S_ISGID)
    assert not run.workdir.joinpath("open.txt").stat().st_mode & stat.S_IWOTH


def test_a_directory_writable_by_all_is_reported_escaped(scene):
    payload(scene, "mkdir $'open\\ndir'; chmod 2777 $'open\\ndir'")
    run = scene.run()
    assert run.outcome == "succeeded", run.why()
    (line,) = [line for line in run.stderr.splitlines() if "writable by every account" in line]
    assert "open\\ndir" in line
    assert node.account(node.ALICE).name == run.result["account"]["name"]
