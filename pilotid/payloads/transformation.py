"""What the transformation adapters share: finding a transformation and turning a job into
the argv that runs it.

A job's ``transformation`` is a name (``runAthena-00-00-11``), a path or a URL.  Only its
last path component counts (the file name), and the adapter is chosen by its *stem*: the
name up to the first ``-`` or ``.`` (``runAthena-00-00-11`` -> ``runAthena``).  The file is
looked for, under its full name then under its stem, in the queue's
``transformation_dirs``, and in the stand-ins shipped with pilotid
(``pilotid/payloads/transformations``) only on a queue whose ``standin_transformations``
is true (the demo, the tests).  A path or URL from the job is never executed as given: the
dispatcher names a transformation, the site decides where transformations live.

``jobPars`` is split into words as bash splits it (``pilotid.payloads.shellwords``), the
pilot directive ``--overwriteQueuedata={...}`` dropped as the real pilot drops it, and the
words are passed on unchanged, in order, never joined back into a shell string.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from zope.interface import implementer

from pilotid.errors import JobDescriptionError, TransformationNotFoundError
from pilotid.interfaces import IPayload
from pilotid.payloads.job import JobSpec, PayloadCommand, checked_file_name
from pilotid.payloads.literal import parse_literal
from pilotid.payloads.shellwords import shell_words

if TYPE_CHECKING:
    from pilotid.queue import QueueSettings

log = logging.getLogger(__name__)

#: The stand-in transformations shipped with pilotid (see docs/payloads.rst).
STANDIN_DIR = Path(__file__).resolve().parent / "transformations"
#: The pilot's own directive in jobPars (pilot3 ``JobData``); never the transformation's.
PILOT_DIRECTIVE = "--overwriteQueuedata="
#: Where a transformation's adapter name ends: its first ``-`` or ``.``.
_STEM_END = re.compile(r"[-.]")


def transformation_basename(transformation: str) -> str:
    """The file name a transformation is known by: the last component of a path or URL."""
    text = transformation.strip()
    if "://" in text:
        text = urlsplit(text).path
    return PurePosixPath(text).name


def transformation_stem(transformation: str) -> str:
    """The adapter name of a transformation: its file name up to the first ``-`` or ``.``.

    ``runAthena-00-00-11`` -> ``runAthena``; ``/cvmfs/.../buildJob-00-00-03`` ->
    ``buildJob``; ``https://host/trf/runAthena.py`` -> ``runAthena``.
    """
    return _STEM_END.split(transformation_basename(transformation), maxsplit=1)[0]


def locate_transformation(transformation: str, directories: Sequence[Path]) -> Path:
    """Return the absolute path of the transformation's file, searched in ``directories``.

    In each directory, in order, the full file name then the stem is tried; the first
    regular file found wins.  Raises ``TransformationNotFoundError`` naming where it looked.
    """
    basename = transformation_basename(transformation)
    stem = transformation_stem(transformation)
    if basename in ("", ".", "..") or not stem:
        raise TransformationNotFoundError(
            f"transformation {transformation!r} names no file; expected a name such as "
            "'runAthena-00-00-11', a path or a URL")
    names = [basename] if basename == stem else [basename, stem]
    looked = []
    for directory in directories:
        directory = Path(os.path.abspath(directory))
        for name in names:
            candidate = directory / name
            looked.append(str(candidate))
            if candidate.is_file():
                log.debug("transformation %s is %s", transformation, candidate)
                return candidate
    if not directories:
        raise TransformationNotFoundError(
            f"transformation {transformation!r} not found: the queue names no "
            "transformation_dirs to look for it in (and does not use pilotid's stand-ins); "
            "add the directory where the site installs it to the queue's transformation_dirs")
    raise TransformationNotFoundError(
        f"transformation {transformation!r} not found: looked for {' and '.join(names)} in "
        f"{', '.join(str(Path(d)) for d in directories)}; install it there or add its "
        "directory to the queue's transformation_dirs")


def interpreter_for(path: Path) -> List[str]:
    """The argv prefix that runs the file ``path``: its ``#!`` line, or the file itself.

    A ``#!`` script is run through its interpreter explicitly (as the kernel would), so it
    works even where installing lost its execute bit.  Anything else must be executable.
    """
    try:
        with open(path, "rb") as script:
            first = script.readline(512)
    except OSError as error:
        raise TransformationNotFoundError(
            f"cannot read transformation {path}: {error.strerror}") from None
    if first.startswith(b"#!"):
        words = os.fsdecode(first[2:].strip()).split(None, 1)
        if words:
            return [*words, str(path)]
    if not os.access(path, os.X_OK):
        raise TransformationNotFoundError(
            f"transformation {path} is neither executable nor a #! script; chmod +x it")
    return [str(path)]


def split_job_pars(job_pars: str,
                   environment: Optional[Mapping[str, str]] = None) -> List[str]:
    """The words of ``jobPars`` the transformation receives, executing nothing.

    jobPars is split as bash splits it (``shell_words``), a plain ``$NAME`` expanded from
    ``environment`` (the variables the adapter gives the transformation; refused where
    None), as the real pilot's bash expands it; the pilot's own directive
    ``--overwriteQueuedata={...}`` is dropped, as the real pilot drops it.  Raises
    ``JobDescriptionError`` naming ``jobPars`` for unbalanced quotes or for text only a
    shell could run (expansions, operators).
    """
    return [word for word in shell_words(job_pars, "jobPars", environment)
            if not word.startswith(PILOT_DIRECTIVE)]


def read_options(args: Sequence[str], short_values: str, long_values: Sequence[str],
                 short_flags: str = "") -> Dict[str, str]:
    """The options of ``args`` that take a value, read as ``getopt`` reads them; last wins.

    ``short_values`` are the letters that take a value (``-o VALUE`` or ``-oVALUE``),
    ``long_values`` the long names that do (``--name=VALUE`` or ``--name VALUE``),
    ``short_flags`` the letters that take none (``-bo X`` is ``-b`` then ``-o X``).  Other
    options are flags and skipped, whether the transformation knows them or not (the pilot
    adds its own); reading stops at ``--``.  Keys are ``-o`` and ``--name``.  An option
    given last with no value is a ``JobDescriptionError``.
    """
    found: Dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            name, equals, value = arg.partition("=")
            if name[2:] not in long_values:
                continue
            if not equals:
                if index >= len(args):
                    raise JobDescriptionError(f"field 'jobPars': option {name} has no value")
                value = args[index]
                index += 1
            found[name] = value
        elif arg.startswith("-") and len(arg) > 1:
            # getopt reads "-bo X" as -b then -o X: walk the letters until one takes a value.
            for position in range(1, len(arg)):
                letter = arg[position]
                if letter in short_flags:
                    continue
                if letter not in short_values:
                    break
                value = arg[position + 1:]
                if not value:
                    if index >= len(args):
                        raise JobDescriptionError(
                            f"field 'jobPars': option -{letter} has no value")
                    value = args[index]
                    index += 1
                found["-" + letter] = value
                break
    return found


def literal_option(options: Dict[str, str], option: str) -> Any:
    """The Python literal given to ``option`` (None if absent), read by ``parse_literal``."""
    text = options.get(option)
    if text is None:
        return None
    return parse_literal(text, f"field 'jobPars': option {option}")


@implementer(IPayload)
class TransformationPayload:
    """An adapter that runs one kind of transformation, chosen by its stem (``name``).

    Subclasses set ``name`` and say which outputs their jobPars options name
    (``named_outputs``); ``command`` and ``outputs`` are shared.
    """

    name = ""

    def __init__(self, settings: "QueueSettings") -> None:
        self.settings = settings

    def search_dirs(self) -> Tuple[Path, ...]:
        """Where transformations are looked for: the queue's directories, then the stand-ins
        where the queue asks for them (``standin_transformations``)."""
        if self.settings.standin_transformations:
            return (*self.settings.transformation_dirs, STANDIN_DIR)
        return tuple(self.settings.transformation_dirs)

    def accepts(self, job: JobSpec) -> bool:
        """True where the stem of the job's transformation is this adapter's name."""
        return transformation_stem(job.transformation) == self.name

    def command(self, job: JobSpec, workdir: Path) -> PayloadCommand:
        """``[interpreter..., transformation, *jobPars words]``, the job's variables, setup.

        jobPars is checked first (split, and the options naming outputs parsed), so that a
        bad job fails here rather than in the payload.
        """
        args = self.words(job)
        self.named_outputs(args)
        path = locate_transformation(job.transformation, self.search_dirs())
        argv = (*interpreter_for(path), *args)
        return PayloadCommand(argv=tuple(argv), environment=self.environment(job),
                              setup=tuple(self.settings.setup))

    def words(self, job: JobSpec) -> List[str]:
        """The words of the job's jobPars the transformation receives (``split_job_pars``
        with this adapter's ``environment``)."""
        return split_job_pars(job.job_pars, dict(self.environment(job)))

    def environment(self, job: JobSpec) -> Tuple[Tuple[str, str], ...]:
        """Variables the transformation reads: ``PANDAID``; ``ATLAS_RELEASE`` from swRelease."""
        env = [("PANDAID", str(job.panda_id))]
        if job.sw_release:
            env.append(("ATLAS_RELEASE", job.sw_release))
        return tuple(env)

    def outputs(self, job: JobSpec) -> Tuple[str, ...]:
        """outFiles (without logFile, which the pilot makes) plus outputs named in jobPars."""
        names = [n for n in job.out_files if n != job.log_file]
        names += self.named_outputs(self.words(job))
        return tuple(dict.fromkeys(names))

    def named_outputs(self, args: Sequence[str]) -> List[str]:
        """The output files the jobPars words ``args`` name; ``JobDescriptionError`` if bad."""
        return []


def checked_output(value: str, option: str) -> str:
    """An output file named by a jobPars ``option``: inside the work directory, not empty."""
    name = checked_file_name(value, f"jobPars {option}")
    if name is None:
        raise JobDescriptionError(f"field 'jobPars': option {option} names no file")
    return name
