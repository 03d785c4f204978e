"""WHAT runs: job descriptions, payload adapters and the wrapper script (its bash: wrapper.sh)."""
