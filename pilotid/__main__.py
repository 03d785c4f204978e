"""``python -m pilotid`` is the ``pilotid`` command."""

from pilotid.cli import main

raise SystemExit(main())
