"""``pilotid run --json`` for tests/faults, AS THE PILOT, with a MyProxy client of short timeouts.

``python pilot_driver.py QUEUES QUEUE JOB WORKDIR OPTIONS``: builds the queue's launcher
as the CLI does, then (``OPTIONS`` a JSON object with ``connect_timeout``,
``read_timeout``, ``retries``) gives its MyProxy source a client with those timeouts, so
that a credential server that never answers fails in seconds, not minutes.  Prints the
result as ``pilotid run --json`` does and exits with its error code.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from pilotid.errors import exit_status
from pilotid.factory import build_launcher
from pilotid.identity.myproxy import MyProxyClient
from pilotid.identity.sources import MyProxySource
from pilotid.payloads.job import load_job
from pilotid.queuefile import load_queue


def main(argv) -> int:
    queues, queue, job_file, workdir, options = argv[1:6]
    options = json.loads(options)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="pilotid: %(levelname)s %(message)s")
    settings = load_queue(queues, queue)
    launcher = build_launcher(settings)
    if isinstance(launcher.source, MyProxySource):
        def client(server, port):
            return MyProxyClient(server, port, connect_timeout=options["connect_timeout"],
                                 read_timeout=options["read_timeout"],
                                 retries=options["retries"], backoff=0.1)

        launcher.source = MyProxySource(settings, client_factory=client)
    result = launcher.run(load_job(job_file), Path(workdir))
    print(json.dumps(result.as_dict(), sort_keys=True))
    return exit_status(result.error_code)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
