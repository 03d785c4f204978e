"""Issue 13, items 8 and 9, on the real node (real sudo, the real ``pilotid-alice``): names
the payload made reach the pilot's log escaped; the modes it left are taken away or
reported."""

from __future__ import annotations

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
