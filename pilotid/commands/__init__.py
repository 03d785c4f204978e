"""One module per ``pilotid`` subcommand; each has ``add_parser(subparsers)``.

``pilotid.cli`` assembles them and owns the error handling and exit statuses.
"""
