"""Local Unix accounts the payload may run as, and the grid-mapfile that maps DNs to them."""

from __future__ import annotations

import logging
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

from pilotid.errors import AccountMappingError, ConfigurationError
from pilotid.identity.dn import normalise_dn

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class GridMapEntry:
    """One grid-mapfile line: a DN (escaped slash form) and its accounts, the first the default."""

    dn: str
    accounts: Tuple[str, ...]
    line: int


_BLANKS = " \t\r\n"
_HEX = "0123456789abcdefABCDEF"
# After a slash or plus that was escaped inside a value: text that would read as a new RDN.
_LOOKS_LIKE_RDN = re.compile(r"[A-Za-z0-9.]+=")


def _unescape(text: str) -> str:
    """Undo a grid-mapfile DN's escapes (``\\c`` is c, ``\\xHH`` is a byte), as Globus does.

    The result is in the escaped slash form ``slash_dn`` prints (bytes outside printable
    ASCII as ``\\xHH``), so that it compares equal to a proxy's identity.
    """
    raw = bytearray()
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            if text[i + 1] == "x" and i + 3 < len(text) and text[i + 2] in _HEX \
                    and text[i + 3] in _HEX:
                raw.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            char = text[i + 1]
            i += 1
        raw += char.encode("utf-8", "surrogateescape")
        i += 1
    return normalise_dn(raw.decode("utf-8", "surrogateescape"))


def _legacy_form(dn: str) -> Optional[str]:
    """``dn`` as OpenSSL before 3.0 printed it (no ``\\/``, ``\\+``), where that is unambiguous.

    Grid-mapfiles written from older tools spell ``CN=host/name`` without the escape.  A
    value where an escaped slash or plus is followed by something like ``CN=`` would read
    as a different DN in that form, so it has none.
    """
    if "\\/" not in dn and "\\+" not in dn:
        return None
    for match in re.finditer(r"\\[/+]", dn):
        if _LOOKS_LIKE_RDN.match(dn, match.end()):
            return None
    return dn.replace("\\/", "/").replace("\\+", "+")


def _parse_line(text: str) -> Tuple[Optional[str], Tuple[str, ...], Optional[str]]:
    """(DN as written, accounts, problem) of one line; (None, (), None) for nothing."""
    line = text.lstrip(_BLANKS)
    if not line or line.startswith("#"):
        return None, (), None
    if line.startswith('"'):
        i = 1
        while i < len(line) and line[i] != '"':
            i += 2 if line[i] == "\\" else 1
        if i >= len(line):
            return None, (), "a closing quote is missing"
        written, rest = line[1:i], line[i + 1:]
    else:
        end = len(line)
        for blank in _BLANKS:
            found = line.find(blank)
            if found >= 0:
                end = min(end, found)
        written, rest = line[:end], line[end:]
    rest = rest.lstrip(_BLANKS)
    token = rest.split(None, 1)[0] if rest.strip() else ""
    accounts = tuple(name for name in token.split(",") if name)
    if not accounts:
        return None, (), "no account follows the DN"
    return written, accounts, None


class GridMapfile:
    """A parsed grid-mapfile: which local account each DN maps to.

    The format Globus reads: one ``"<DN>" account[,account...]`` per line; the DN quoted
    when it holds blanks, with ``\\"``, ``\\\\`` and ``\\xHH`` escapes; ``#`` starts a
    comment line; the first account of a line is the one used, and the first line naming
    a DN wins.  Malformed lines are skipped with a warning, as Globus skips them, and
    remembered in ``skipped`` so that a failed lookup can mention them.
    """

    def __init__(self, entries: Sequence[GridMapEntry], source: str = "grid-mapfile",
                 skipped: Sequence[Tuple[int, str]] = ()) -> None:
        self.entries = tuple(entries)
        self.source = source
        self.skipped = tuple(skipped)
        self._by_dn: Dict[str, GridMapEntry] = {}
        for entry in self.entries:
            self._by_dn.setdefault(entry.dn, entry)

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def parse(cls, text: str, source: str = "grid-mapfile") -> "GridMapfile":
        """Parse the text of a grid-mapfile; ``source`` names it in messages."""
        entries = []
        skipped = []
        for number, line in enumerate(text.splitlines(), start=1):
            written, accounts, problem = _parse_line(line)
            if problem:
                log.warning("%s line %d skipped: %s", source, number, problem)
                skipped.append((number, problem))
            elif written is not None:
                entries.append(GridMapEntry(_unescape(written), accounts, number))
        return cls(entries, source, skipped)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "GridMapfile":
        """Read and parse the grid-mapfile at ``path``.

        Raises ``ConfigurationError`` naming the file when it is missing, a directory or
        unreadable: the grid-mapfile is the operator's to provide.
        """
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigurationError(
                f"grid-mapfile {path} does not exist: set grid_mapfile in the queue settings "
                "to the site's grid-mapfile") from None
        except IsADirectoryError:
            raise ConfigurationError(f"grid-mapfile {path} is a directory, not a file") from None
        except PermissionError:
            raise ConfigurationError(
                f"grid-mapfile {path} cannot be read by uid {os.geteuid()}: permission denied "
                "(make it readable by the pilot account)") from None
        except OSError as error:
            raise ConfigurationError(f"grid-mapfile {path} cannot be read: {error.strerror}") \
                from None
        return cls.parse(data.decode("utf-8", "surrogateescape"), str(path))

    def find(self, dn: str) -> Optional[GridMapEntry]:
        """The entry for ``dn`` (slash form, as a proxy's identity), or None."""
        key = normalise_dn(dn)
        entry = self._by_dn.get(key)
        if entry is None:
            legacy = _legacy_form(key)
            if legacy is not None:
                entry = self._by_dn.get(legacy)
                if entry is not None:
                    log.debug("%s line %d matches %s in its pre-OpenSSL-3 spelling",
                              self.source, entry.line, dn)
        return entry

    def lookup(self, dn: str) -> str:
        """Return the account ``dn`` maps to (its line's first); ``AccountMappingError`` if none."""
        entry = self.find(dn)
        if entry is None:
            note = ""
            if self.skipped:
                number, problem = self.skipped[0]
                note = (f" ({len(self.skipped)} malformed line(s) were skipped, the first "
                        f"line {number}: {problem})")
            raise AccountMappingError(
                f"DN {dn} is not in the grid-mapfile {self.source}: the site has not mapped "
                f"this user to a local account{note}")
        return entry.accounts[0]


def map_account(dn: str, mapfile_path: Union[str, Path]) -> Account:
    """Return the local ``Account`` the grid-mapfile at ``mapfile_path`` gives ``dn``.

    Raises ``AccountMappingError`` (naming the DN and the file) when the DN is not mapped or
    maps to an account this node does not have, and ``ConfigurationError`` when the file
    cannot be read.
    """
    mapfile = GridMapfile.load(mapfile_path)
    return local_account(mapfile.lookup(dn), f"grid-mapfile {mapfile_path} maps DN {dn}")


def local_account(name: str, mapping: str) -> Account:
    """The node's account ``name``, which ``mapping`` (a sentence's start: "grid-mapfile F
    maps DN D") named; ``AccountMappingError`` for a pool, an invalid name or an account
    this node does not have."""
    if name.startswith("."):
        raise AccountMappingError(
            f"{mapping} to the pool '{name}': pool accounts "
            "need LCMAPS (gLExec), pilotid does not lease them itself")
    if name.startswith("-") or "/" in name or ":" in name:
        raise AccountMappingError(
            f"{mapping} to '{name}', which is not a valid account name")
    try:
        return Account.by_name(name)
    except KeyError:
        raise AccountMappingError(
            f"{mapping} to account '{name}', which does not "
            "exist on this node (check `getent passwd " + name + "`)") from None
