"""Local Unix accounts the payload may run as."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass


@dataclass(frozen=True)
class Account:
    """A local Unix account: the identity a payload runs as."""

    name: str
    uid: int
    gid: int

    @classmethod
    def current(cls) -> "Account":
        """The account this process (the pilot) runs as."""
        entry = pwd.getpwuid(os.geteuid())
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    @classmethod
    def by_name(cls, name: str) -> "Account":
        """Look ``name`` up in the node's user database; ``KeyError`` if absent."""
        entry = pwd.getpwnam(name)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    def as_dict(self) -> dict:
        """The account as the JSON result and the accounting record show it."""
        return {"name": self.name, "uid": self.uid, "gid": self.gid}
