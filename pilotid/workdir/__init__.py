"""The work directory, shared by the pilot and the payload's account for one job.

``grant_target_access`` opens it to the target (ACL first), ``reclaim`` takes it back
exactly, ``make_handover_directory`` makes the target's private place for its proxy copy,
and ``acl_supported`` says which of the two modes a file system allows.  One idea a module:
``acl`` (the ACL codec and the access check), ``walk`` (the descriptor walk, GNU ``find``
alongside), ``changes`` (what a grant changed), ``builder`` (making those changes),
``grant`` (and ``choose_sandbox_mode``), ``reclaim``, ``handover``, ``placement`` (where a
work directory may not be: ``refuse_unsafe_workdir``, ``refuse_leftovers``; readying it:
``prepare_workdir``), ``private`` (the job's private directory, outside the work
directory), ``orphans`` (``make_private_directory``: recorded before it is made, so that
the cleanup removes a dead pilot's), ``parents`` (``u:<target>:x`` from the work root
down, locked and counted), ``journal`` (``GrantJournal``: every change written down
first), ``moved`` (objects moved out, found by inode), ``copies`` (``remove_copies``:
credential copies the payload renamed, found by the identity the wrapper wrote),
``removed`` (``remove_for_good``: the pilot's own scratch files, which the reclaim then
need not look for), ``cleanup`` (``undo_dead_grants``: what dead pilots granted, and their
private directories).
These are the names the rest of pilotid uses.
"""

from __future__ import annotations

from pilotid.workdir.acl import acl_supported
from pilotid.workdir.changes import SandboxGrant
from pilotid.workdir.cleanup import default_state_dir, undo_dead_grants, undo_journal
from pilotid.workdir.copies import copies_in_place, remove_copies
from pilotid.workdir.grant import acl_unsupported, choose_sandbox_mode, grant_target_access
from pilotid.workdir.handover import HandoverDirectory, make_handover_directory
from pilotid.workdir.journal import GrantJournal
from pilotid.workdir.orphans import make_private_directory
from pilotid.workdir.placement import (
    PRIVATE_DIR_NAME,
    prepare_workdir,
    refuse_leftovers,
    refuse_unsafe_workdir,
)
from pilotid.workdir.private import PrivateDirectory
from pilotid.workdir.reclaim import reclaim
from pilotid.workdir.removed import remove_for_good

__all__ = [
    "PRIVATE_DIR_NAME", "GrantJournal", "HandoverDirectory", "PrivateDirectory", "SandboxGrant",
    "acl_supported", "acl_unsupported", "choose_sandbox_mode", "copies_in_place",
    "default_state_dir",
    "grant_target_access", "make_handover_directory", "make_private_directory",
    "prepare_workdir", "reclaim", "refuse_leftovers",
    "refuse_unsafe_workdir", "remove_copies", "remove_for_good",
    "undo_dead_grants", "undo_journal",
]
