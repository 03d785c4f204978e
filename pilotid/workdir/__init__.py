"""The work directory, shared by the pilot and the payload's account for one job.

``grant_target_access`` opens it to the target (ACL first), ``reclaim`` takes it back
exactly, ``make_handover_directory`` makes the target's private place for its proxy copy,
and ``acl_supported`` says which of the two modes a file system allows.  The package's
modules hold one idea each; these are the names the rest of pilotid uses.
"""

from __future__ import annotations

from pilotid.workdir.grant import (
    PRIVATE_DIR_NAME,
    HandoverDirectory,
    SandboxGrant,
    acl_supported,
    grant_target_access,
    make_handover_directory,
    reclaim,
)

__all__ = [
    "PRIVATE_DIR_NAME", "HandoverDirectory", "SandboxGrant", "acl_supported",
    "grant_target_access", "make_handover_directory", "reclaim",
]
