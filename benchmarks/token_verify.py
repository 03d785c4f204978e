"""Benchmark: fetch, parse and verify one bearer token, pilotid against scitokens.

Not a test.  Makes a throwaway RS256 (or ES256) issuer, its JWKS file and a token file,
then times, alternating round by round in the same process, the median over ``--rounds``
rounds of ``--tokens`` tokens each:

* ``pilotid``    ``read_token_file`` + ``TokenVerifier.verify`` (the queue's keys loaded
                 once, as a token source keeps them);
* ``scitokens``  reading the same file + ``SciToken.deserialize`` with the issuer's public
                 key given (scitokens' offline verification with a cached key).

Prints both medians and their ratio; issue 15 asks for at most 1.0x.  Needs scitokens
(``pip install scitokens``).

    PYTHONPATH=. /opt/pilotid-test/venv/bin/python benchmarks/token_verify.py --rounds 15
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def main() -> int:
    """Run the benchmark; print the medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--algorithm", choices=("RS256", "ES256"), default="RS256")
    args = parser.parse_args()

    import scitokens
    from cryptography.hazmat.primitives import serialization

    from pilotid.identity.testissuer import TestIssuer
    from pilotid.identity.tokens import TokenVerifier, load_issuer_keys, read_token_file

    base = Path(tempfile.mkdtemp(prefix="pilotid-token-bench-"))
    issuer = TestIssuer("https://atlas-auth.example.org/", args.algorithm)
    verifier = TokenVerifier({issuer.url: load_issuer_keys(
        issuer.url, issuer.write_jwks(base / "issuer.jwks"))})
    public = issuer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    files = []
    for number in range(args.tokens):
        path = base / f"bt-{number}"
        path.write_text(issuer.token("alice", groups=["/atlas"]) + "\n")
        files.append(path)

    def with_pilotid() -> None:
        for path in files:
            verifier.verify(read_token_file(path) or "")

    def with_scitokens() -> None:
        for path in files:
            scitokens.SciToken.deserialize(path.read_text().strip(), public_key=public)

    timings = {"pilotid": [], "scitokens": []}
    for _ in range(args.rounds):
        for name, work in (("pilotid", with_pilotid), ("scitokens", with_scitokens)):
            start = time.perf_counter()
            work()
            timings[name].append((time.perf_counter() - start) / len(files))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, value in medians.items():
        print(f"{name:<10} {value * 1e6:8.1f} us per token ({args.algorithm})")
    print(f"ratio pilotid/scitokens: {medians['pilotid'] / medians['scitokens']:.2f}x "
          "(target: at most 1.0x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
