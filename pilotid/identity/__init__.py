"""WHO the payload runs as: proxies, credential sources, accounts."""
