"""The accounting record: one JSON line a job, for the site's accounting.

The record is the job's result (``PayloadResult.accounting_record``: the fields of
``pilotid run --json`` plus the user's DN), appended to ``accounting.jsonl`` in the work
directory and to the queue's ``accounting_file`` if it has one.  Other programs read these
files: extend the record, never rename its fields.  A record that cannot be written is
logged, never raised: the job's result stands.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

from pilotid.workfiles import append_in_workdir, open_append

if TYPE_CHECKING:
    from pilotid.result import PayloadResult

log = logging.getLogger(__name__)

#: The accounting file every job appends to in its work directory.
WORKDIR_FILE_NAME = "accounting.jsonl"


def append_record(result: "PayloadResult", token: str, queue_file: Optional[Path],
                  in_workdir: bool = True) -> None:
    """Append ``result``'s accounting record to the work directory's and ``queue_file``.

    Not into a work directory that failed the launcher's check (``in_workdir`` False:
    missing, unwritable): its error is the job's, and a second one would only repeat it.
    What a payload put in the work directory file's place is moved aside
    (``append_in_workdir``, ``token``); ``queue_file`` is only ever appended to as it is.
    """
    line = (json.dumps(result.accounting_record(), sort_keys=True) + "\n").encode()
    targets: List[Tuple[Path, bool]] = (
        [(result.workdir / WORKDIR_FILE_NAME, True)] if in_workdir else [])
    if queue_file:
        targets.append((Path(queue_file), False))
    for target, workdir_file in targets:
        try:
            fd = append_in_workdir(target, token) if workdir_file else open_append(target)
            with os.fdopen(fd, "ab") as out:
                out.write(line)
        except OSError as error:
            log.error("job %s: cannot write accounting record to %s: %s",
                      result.panda_id, target, error.strerror)
