"""Strategies of the test plugin distribution (see setup.py beside this package)."""
