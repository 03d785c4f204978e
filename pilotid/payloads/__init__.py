"""WHAT runs: job descriptions, payload adapters, the wrapper script and the sandbox."""
