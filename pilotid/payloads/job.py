"""The job the pilot received (``JobSpec``) and the command built for it (``PayloadCommand``).

``JobSpec.from_description`` validates the job record PanDA's dispatcher sends;
``parse_job_record`` reads one from its text, either form the dispatcher uses: the JSON
object (newer servers, harvester) or the URL-encoded getJob answer (every value a string,
``NULL`` meaning none); ``load_job`` reads one from a file or standard input.  A bad record
is a ``JobDescriptionError`` naming the field (and the file).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import parse_qsl

from pilotid.errors import JobDescriptionError

#: PanDA writes ``NULL`` for a field it has no value for; so do ``null`` and ``""`` here.
_UNSET = (None, "", "NULL")
_DIGITS = re.compile(r"[0-9]+")
#: Control characters that no name, path or DN of a job may contain (tab and newline
#: included; ``jobPars`` alone may hold newlines and tabs, as shell-style text can).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class JobSpec:
    """A PanDA job description, validated: the fields pilotid uses, under Python names.

    ``transformation`` may be a name (``runAthena-00-00-11``), a path or a URL.
    """

    panda_id: int
    transformation: str
    job_pars: str = ""
    prod_user_id: Optional[str] = None
    credname: Optional[str] = None
    myproxy: Optional[str] = None
    home_package: Optional[str] = None
    sw_release: Optional[str] = None
    in_files: Tuple[str, ...] = ()
    out_files: Tuple[str, ...] = ()
    log_file: Optional[str] = None
    prod_source_label: Optional[str] = None
    max_cpu_time: Optional[int] = None

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> "JobSpec":
        """Validate a PanDA job description (the decoded JSON object) into a ``JobSpec``.

        ==================  ================  =============================================
        PanDA field         JobSpec           accepted
        ==================  ================  =============================================
        PandaID             panda_id          required; an integer >= 0 or a string of digits
        transformation      transformation    required; a non-empty name, path or URL
        jobPars             job_pars          a string (shell-style words, split later)
        prodUserID          prod_user_id      a string (the user's DN)
        credname            credname          a string
        myproxy             myproxy           a string (``host`` or ``host:port``)
        homepackage         home_package      a string
        swRelease           sw_release        a string
        inFiles, outFiles   in_files, ...     comma-separated string, or a list of strings;
                                              each a relative path without ``..``
        logFile             log_file          a relative path without ``..``
        prodSourceLabel     prod_source_label a string
        maxCpuCount         max_cpu_time      an integer >= 0 or a string of digits
        ==================  ================  =============================================

        An optional field that is absent, ``null``, ``""`` or ``"NULL"`` (PanDA's way of
        saying "none") is unset.  Other fields are ignored: PanDA sends many.  No text field
        may contain a NUL (it could not reach the payload), nor, except ``jobPars``, any
        other control character.  Raises ``JobDescriptionError`` naming the field.
        """
        if not isinstance(description, Mapping):
            raise JobDescriptionError(
                f"a job description must be a JSON object, not {type(description).__name__}")
        get = description.get
        return cls(
            panda_id=_panda_id(get("PandaID")),
            transformation=_transformation(get("transformation")),
            job_pars=_job_pars(get("jobPars")),
            prod_user_id=_text(get("prodUserID"), "prodUserID"),
            credname=_text(get("credname"), "credname"),
            myproxy=_text(get("myproxy"), "myproxy"),
            home_package=_text(get("homepackage"), "homepackage"),
            sw_release=_text(get("swRelease"), "swRelease"),
            in_files=_file_list(get("inFiles"), "inFiles"),
            out_files=_file_list(get("outFiles"), "outFiles"),
            log_file=checked_file_name(get("logFile"), "logFile"),
            prod_source_label=_text(get("prodSourceLabel"), "prodSourceLabel"),
            max_cpu_time=_count(get("maxCpuCount"), "maxCpuCount"),
        )


@dataclass(frozen=True)
class PayloadCommand:
    """What the wrapper runs: ``argv`` (never a shell string), environment additions, and
    the site's setup lines (from queue settings) that the wrapper sources first."""

    argv: Tuple[str, ...]
    environment: Tuple[Tuple[str, str], ...] = ()
    setup: Tuple[str, ...] = field(default=())


def load_job(path: Union[str, Path]) -> JobSpec:
    """Read a job record from the file ``path`` (``-``: standard input); return its ``JobSpec``.

    The record is the JSON object or the URL-encoded getJob answer (``parse_job_record``).
    Raises ``JobDescriptionError`` naming the file: unreadable, not UTF-8, not a record
    (with the line and column for JSON), or a bad field (named).
    """
    where = "standard input" if str(path) == "-" else str(path)
    try:
        data = sys.stdin.buffer.read() if str(path) == "-" else Path(path).read_bytes()
    except OSError as error:
        raise JobDescriptionError(
            f"cannot read job description {where}: {error.strerror}") from None
    try:
        return parse_job_record(data)
    except JobDescriptionError as error:
        joint = " " if str(error).startswith("is ") else ": "
        raise JobDescriptionError(f"job description {where}{joint}{error}") from None


def parse_job_record(data: Union[bytes, str]) -> JobSpec:
    """The ``JobSpec`` of one job record as the dispatcher sends it, in either form.

    Text starting with ``{`` is the JSON object (or a table of one job by its PandaID,
    ``{"4242": {...}}``, as harvester keeps them); anything else is read as the URL-encoded
    getJob answer (``PandaID=42&transformation=...&jobPars=...``), where a key given twice
    is refused (it could be read two ways) and ``NULL`` means none.  UTF-8 only.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JobDescriptionError(
                f"is not UTF-8 (byte {error.start}); PanDA sends UTF-8") from None
    else:
        text = data
    if text.lstrip().startswith("{"):
        try:
            description = json.loads(text)
        except json.JSONDecodeError as error:
            raise JobDescriptionError(
                f"is not valid JSON: {error.msg} at line {error.lineno} column "
                f"{error.colno}") from None
        return JobSpec.from_description(_unwrapped(description))
    return JobSpec.from_description(_url_encoded(text.strip()))


def _unwrapped(description: Any) -> Any:
    """The job of ``{"<PandaID>": {job}}`` (harvester's and getJobs' table of jobs by
    PandaID, with one job); anything else as it is."""
    if isinstance(description, dict) and len(description) == 1:
        (key, value), = description.items()
        if isinstance(key, str) and _DIGITS.fullmatch(key) and isinstance(value, dict):
            return value
    return description


def _url_encoded(text: str) -> Dict[str, str]:
    """The fields of a URL-encoded getJob answer; ``JobDescriptionError`` if it is not one."""
    if "=" not in text:
        raise JobDescriptionError(
            "is neither a JSON object nor a URL-encoded getJob answer (PandaID=...&...)")
    fields: Dict[str, str] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True,
                          errors="strict")
    except (ValueError, UnicodeDecodeError) as error:
        raise JobDescriptionError(f"is not a URL-encoded getJob answer: {error}") from None
    for key, value in pairs:
        if key in fields:
            raise JobDescriptionError(f"field {key!r} is given twice in the getJob answer")
        fields[key] = value
    return fields


def _shown(value: Any) -> str:
    """A value for an error message, cut short: job fields can be very long."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(field_name: str, what: str, value: Any) -> JobDescriptionError:
    return JobDescriptionError(f"field {field_name!r} {what} (got {_shown(value)})")


def _text(value: Any, field_name: str) -> Optional[str]:
    """An optional single-line string field."""
    if value in _UNSET:
        return None
    if not isinstance(value, str):
        raise _bad(field_name, "must be a string", value)
    if _CONTROL.search(value):
        raise _bad(field_name, "must not contain control characters", value)
    return value


def _panda_id(value: Any) -> int:
    number = _count(value, "PandaID")
    if number is None:
        raise _bad("PandaID", "is required: the job's number", value)
    return number


def _count(value: Any, field_name: str) -> Optional[int]:
    """An integer field (>= 0) that PanDA may send as a number or a string of digits."""
    if value in _UNSET:
        return None
    if isinstance(value, bool):
        raise _bad(field_name, "must be an integer, not a boolean", value)
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        return int(value.strip())
    raise _bad(field_name, "must be a whole number >= 0 (or a string of digits)", value)


def _transformation(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad("transformation", "is required: a non-empty name, path or URL such as "
                   "'runAthena-00-00-11'", value)
    if _CONTROL.search(value):
        raise _bad("transformation", "must not contain control characters", value)
    return value.strip()


def _job_pars(value: Any) -> str:
    if value in _UNSET:
        return ""
    if not isinstance(value, str):
        raise _bad("jobPars", "must be a string of arguments", value)
    if "\x00" in value:
        raise _bad("jobPars", "must not contain a NUL character", value)
    return value


def checked_file_name(value: Any, field_name: str) -> Optional[str]:
    """Return ``value`` checked as a file the payload reads or writes, or None if unset.

    It must be relative to the work directory and never climb above it (no ``..``, not
    absolute), with no control characters; ``JobDescriptionError`` naming ``field_name``
    otherwise.
    """
    name = _text(value, field_name)
    if name is None:
        return None
    name = name.strip()
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or ".." in parts or name in (".",):
        raise _bad(field_name, "must name a file inside the work directory (a relative "
                   "path without '..')", value)
    return name


def _file_list(value: Any, field_name: str) -> Tuple[str, ...]:
    """``"a.root,b.root"`` (PanDA's way) or ``["a.root", "b.root"]``; empty entries dropped."""
    if value in _UNSET:
        return ()
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
        for item in items:
            if not isinstance(item, str):
                raise _bad(field_name, "must be a comma-separated string or a list of "
                           "strings", item)
    else:
        raise _bad(field_name, "must be a comma-separated string or a list of strings", value)
    names = []
    for item in items:
        if item.strip() in _UNSET:
            continue
        names.append(checked_file_name(item, field_name))
    return tuple(n for n in names if n)
