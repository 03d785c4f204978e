"""pilotid: run a grid pilot's payload under the end user's own Unix identity."""

from __future__ import annotations

__version__ = "0.1.0"
