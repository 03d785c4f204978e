"""The job the pilot received (``JobSpec``) and the command built for it (``PayloadCommand``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple


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


@dataclass(frozen=True)
class PayloadCommand:
    """What the wrapper runs: ``argv`` (never a shell string), environment additions, and
    the site's setup lines (from queue settings) that the wrapper sources first."""

    argv: Tuple[str, ...]
    environment: Tuple[Tuple[str, str], ...] = ()
    setup: Tuple[str, ...] = field(default=())
