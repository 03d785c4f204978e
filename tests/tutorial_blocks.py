"""The console blocks of docs/tutorial.rst, as commands and the output they show, and the
comparison of a shown output with a real one (``...`` stands for what varies)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.rst"
PROMPTS = ("pilot$ ", "$ ", "# ")


@dataclass
class Command:
    """One command of a console block: its prompt, its text (continuation lines joined) and
    the output lines the page shows after it."""

    prompt: str
    text: str
    output: List[str] = field(default_factory=list)


def console_blocks(text: str) -> List[List[Command]]:
    """Every ``.. code-block:: console`` of ``text``; a block's first prompt is its prompt
    style, and lines that do not start with it are output (``# ...`` after a ``$`` is)."""
    blocks = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.strip() != ".. code-block:: console":
            continue
        body = []
        for following in lines[number + 2:]:
            if following and not following.startswith("   "):
                break
            body.append(following[3:])
        while body and not body[-1]:
            body.pop()
        prompt = next(p for p in PROMPTS if body[0].startswith(p))
        commands: List[Command] = []
        continued = False
        for entry in body:
            if continued:
                commands[-1].text = commands[-1].text[:-1] + " " + entry.strip()
            elif entry.startswith(prompt):
                commands.append(Command(prompt, entry[len(prompt):]))
            else:
                commands[-1].output.append(entry)
            continued = commands[-1].text.endswith("\\") and not commands[-1].output
        blocks.append(commands)
    return blocks


def tutorial_commands() -> List[Command]:
    """Every command of the tutorial's console blocks, in page order."""
    return [c for block in console_blocks(TUTORIAL.read_text(encoding="utf-8")) for c in block]


def tutorial_queue(name: str) -> dict:
    """The settings of queue ``name`` from the tutorial's JSON blocks."""
    text = TUTORIAL.read_text(encoding="utf-8")
    for block in re.findall(r"\.\. code-block:: json\n\n((?:   .*\n|\n)+)", text):
        if f'"{name}"' in block:
            return json.loads(block)["queues"][name]
    raise AssertionError(f"the tutorial has no queue {name}")


def _normal(line: str) -> str:
    # numbers vary from run to run and node to node: uids, pids, ports, times left
    return re.sub(r"\d+", "0", " ".join(line.split()))


def unmatched(shown: Sequence[str], real: Sequence[str],
              names: Dict[str, str]) -> "tuple[List[str], List[str]]":
    """The lines ``shown`` on the page that no ``real`` line matches, and the real lines left
    over.  ``names`` maps what the real run printed to what the page says (paths, account
    names), longest first; ``...`` on the page matches anything; the order of lines is
    free (standard error and output interleave differently in a terminal)."""
    def translate(line: str) -> str:
        for real_name, page_name in sorted(names.items(), key=lambda kv: -len(kv[0])):
            line = line.replace(real_name, page_name)
        return _normal(line)

    left = [translate(line) for line in real if line.strip()]
    missing = []
    for line in shown:
        pattern = re.compile(re.escape(_normal(line)).replace(re.escape("..."), ".*"))
        found = next((i for i, candidate in enumerate(left) if pattern.fullmatch(candidate)),
                     None)
        if found is None:
            missing.append(line)
        else:
            left.pop(found)
    return missing, left
