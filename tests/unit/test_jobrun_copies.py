"""``JobRun.note_copies_in_place``: a copy the payload left where the wrapper stored it needs
no search of the work directory after the job; a moved one does."""

from __future__ import annotations

import os

from pilotid.launcher.jobrun import JobRun
from pilotid.payloads.job import JobSpec
from pilotid.values import WrapperMarker
from pilotid.workdir import make_handover_directory


def stored_copy(tmp_path):
    run = JobRun(JobSpec(panda_id=7, transformation="runAthena"), tmp_path)
    run.handover_dir = make_handover_directory(tmp_path / ".handover" / "x509up", None)
    copy = tmp_path / ".handover" / "x509up"
    copy.write_text("proxy")
    info = copy.stat()
    run.marker = WrapperMarker(os.getuid(), 0, copies=((info.st_dev, info.st_ino),))
    return run, copy, (info.st_dev, info.st_ino)


def test_a_copy_left_in_place_needs_no_search(tmp_path):
    run, _, identity = stored_copy(tmp_path)
    run.note_copies_in_place()
    assert run.copies_in_place == {identity}
    run.handover_dir.remove()


def test_a_renamed_copy_is_searched_for(tmp_path):
    run, copy, _ = stored_copy(tmp_path)
    copy.rename(tmp_path / "kept.pem")
    run.note_copies_in_place()
    assert run.copies_in_place == set()
    run.handover_dir.remove()
