"""Per-queue configuration: ``QueueSettings``, validated when loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Tuple


@dataclass(frozen=True)
class QueueSettings:
    """One queue's settings, as validated from the queue settings file.

    ``switcher``, ``credential_source`` and ``payloads`` are registry names; the rest
    configure them.  ``glexec_mode`` keeps what PanDA's ``glexec`` field asked for
    (``'uid'``, ``'test'`` or ``None``).
    """

    name: str
    switcher: str = "noop"
    credential_source: str = "file"
    payloads: Tuple[str, ...] = ("buildJob", "runAthena")
    proxy_file: Optional[Path] = None
    grid_mapfile: Optional[Path] = None
    glexec_path: Optional[Path] = None
    glexec_mode: Optional[str] = None
    on_probe_failure: str = "fail"
    myproxy_server: Optional[str] = None
    myproxy_port: int = 7512
    sandbox: str = "acl"
    umask: int = 0o022
    egg_cache_base: Path = Path("/tmp")
    setup: Tuple[str, ...] = ()
    env_deny: Tuple[str, ...] = ()
    timeout: Optional[int] = None
    grace_period: int = 30
    accounting_file: Optional[Path] = None
    transformation_dirs: Tuple[Path, ...] = field(default=())
