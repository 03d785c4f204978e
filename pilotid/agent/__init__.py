"""The agent: a long-lived process of the pilot's that ``pilotid run`` hands its job to.

``server`` (``pilotid agent``: listen, check the peer, fork), ``listener`` (the socket in
its private directory), ``child`` (one job in a forked child), ``client`` (the ``pilotid
run`` side, imported alone by ``pilotid.__main__``), ``protocol`` (what both say).
docs/agent.rst describes it.
"""
