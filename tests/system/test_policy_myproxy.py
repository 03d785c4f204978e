"""Retrieval policies from ``pilotid.identity.policy`` on a real ``myproxy-server``.

The user stores with the real ``myproxy-init -x -Z``, the pilots retrieve with the real
``myproxy-logon``: the escaped policy lets a pilot whose DN is full of regex characters in,
keeps out a DN that the same DN written unescaped lets in, and a policy of a thousand DNs
works on this server (6.2.14 has no 255-character limit).  The server is the session's
(the ``myproxy`` fixture).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import pytest
from cryptography import x509

from pilotid.errors import ConfigurationError
from pilotid.identity.policy import (
    DN_FORM,
    LEGACY_MAX_LENGTH,
    RetrievalPolicy,
    check_length,
    dn_policy,
    fqan_policy,
)

# A queue's pilot whose DN is full of what MyProxy's matching treats specially.
SPECIAL_PILOT_DN = "/DC=org/DC=example/OU=Robots/CN=pilot (ANALY_*) v1.0?"
# What that DN, stored unescaped, matches instead: "(...)" is a group, "*" any text, "?" any char.
NAIVE_INTRUDER_DN = "/DC=org/DC=example/OU=Robots/CN=pilot ANALY_EVIL v1.0X"
BRACKET_PILOT_DN = "/DC=ch/DC=cern/OU=Robots/CN=pilot [glexec]|queue.b"
BRACKET_INTRUDER_DN = "/DC=ch/DC=cern/OU=Robots/CN=pilot g"
REFUSED = "authentication failed"


class PolicyLab:
    """The shared lab, seen from this module: alice stores, pilots (by certificate) retrieve."""

    def __init__(self, lab) -> None:
        self.lab = lab

    def store(self, credname: str, policy: str) -> None:
        """Alice delegates with ``myproxy-init -x -Z policy`` (-x first: sent unchanged)."""
        self.lab.store("alice", credname, policy, hours=2, max_hours=1)

    def stored_policy(self, credname: str) -> str:
        """The trusted retrieval policy ``myproxy-info`` shows for ``credname``."""
        cert, key = self.lab.files["alice"]
        done = self.lab.run(["myproxy-info", *self.lab.server_args, "-l", "alice",
                             "-k", credname], X509_USER_CERT=str(cert), X509_USER_KEY=str(key))
        for line in done.stdout.splitlines():
            name, _, value = line.strip().partition(": ")
            if name == "trusted retrieval policy":
                return value
        raise AssertionError(f"no trusted retrieval policy in {done.stdout!r}")

    def logon(self, identity, stem: str, credname: str, proxy: Optional[Path] = None):
        """The pilot retrieves with ``myproxy-logon -n``, authenticating with its certificate
        (or with ``proxy``); returns (CompletedProcess, output path)."""
        if proxy:  # with X509_USER_CERT set, myproxy-logon would authenticate with that instead
            return self.lab.logon(credname, proxy=proxy)
        return self.lab.logon(credname, cert_key=self.lab.voms.credentials(identity, stem))

    def fake(self, identity, stem: str, fqans) -> Path:
        """A VOMS proxy (VO atlas) of ``identity`` made by voms-proxy-fake."""
        return self.lab.voms.fake(identity, stem, "atlas", fqans)


@pytest.fixture(scope="module")
def policies(myproxy):
    """The session's myproxy-server, with this module's helpers."""
    return PolicyLab(myproxy)


@pytest.fixture(scope="module")
def pilots(users):
    """Pilot and intruder certificates with DNs that stress the policy matching."""
    ca = users.ca
    return {"special": ca.issue(SPECIAL_PILOT_DN),
            "naive_intruder": ca.issue(NAIVE_INTRUDER_DN),
            "bracket": ca.issue(BRACKET_PILOT_DN),
            "bracket_intruder": ca.issue(BRACKET_INTRUDER_DN)}


def _retrieved_identity(out: Path) -> str:
    certificates = x509.load_pem_x509_certificates(out.read_bytes())
    return certificates[-1].subject.rfc4514_string()


def test_escaped_policy_is_stored_unchanged(policies):
    policy = dn_policy([SPECIAL_PILOT_DN])
    policies.store("special", policy)
    assert policies.stored_policy("special") == policy


def test_escaped_policy_lets_the_pilot_with_special_characters_retrieve(policies, pilots):
    policies.store("special-get", dn_policy([SPECIAL_PILOT_DN]))
    done, out = policies.logon(pilots["special"], "special", "special-get")
    assert done.returncode == 0, done.stderr
    assert "Alice Analyst 1234" in _retrieved_identity(out)
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_escaped_policy_refuses_the_dn_a_naive_policy_admits(policies, pilots):
    policies.store("escaped", dn_policy([SPECIAL_PILOT_DN]))
    policies.store("naive", SPECIAL_PILOT_DN)

    refused, out = policies.logon(pilots["naive_intruder"], "naive-intruder", "escaped")
    assert refused.returncode != 0 and REFUSED in refused.stderr
    assert not out.exists()

    # The same DN written as it is: the intruder gets Alice's proxy, the pilot does not.
    admitted, _ = policies.logon(pilots["naive_intruder"], "naive-intruder", "naive")
    assert admitted.returncode == 0, admitted.stderr
    locked_out, _ = policies.logon(pilots["special"], "special", "naive")
    assert locked_out.returncode != 0 and REFUSED in locked_out.stderr


def test_policy_with_several_pilot_dns_admits_each_and_nobody_else(policies, users, pilots):
    policies.store("two-queues", dn_policy([SPECIAL_PILOT_DN, BRACKET_PILOT_DN]))
    for name in ("special", "bracket"):
        done, _ = policies.logon(pilots[name], name, "two-queues")
        assert done.returncode == 0, (name, done.stderr)
    for name in ("naive_intruder", "bracket_intruder"):
        done, _ = policies.logon(pilots[name], name.replace("_", "-"), "two-queues")
        assert done.returncode != 0 and REFUSED in done.stderr, name
    done, _ = policies.logon(users.pilot, "pilot", "two-queues")
    assert done.returncode != 0


def test_thousand_dn_policy_works_on_a_server_without_the_255_limit(policies, pilots):
    dns = [f"/DC=org/DC=example/OU=Robots/CN=pilot {i:04d} (queue {i % 37}).example.org"
           for i in range(999)] + [SPECIAL_PILOT_DN]
    policy = RetrievalPolicy(dn_policy(dns), DN_FORM)
    assert policy.length > 50000
    with pytest.raises(ConfigurationError, match="255"):
        check_length(policy, LEGACY_MAX_LENGTH)
    check_length(policy, None)
    policies.store("thousand", policy.text)
    started = time.monotonic()
    done, _ = policies.logon(pilots["special"], "special", "thousand")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    refused, _ = policies.logon(pilots["naive_intruder"], "naive-intruder", "thousand")
    assert refused.returncode != 0 and REFUSED in refused.stderr


def test_fqan_policy_admits_the_spelling_a_real_voms_server_writes(policies, users):
    policies.store("fqan", fqan_policy("/atlas/Role=pilot"))
    full = policies.fake(users.pilot, "pilot", ["/atlas/Role=pilot/Capability=NULL",
                                                "/atlas/Role=NULL/Capability=NULL"])
    short = policies.fake(users.pilot, "pilot", ["/atlas/Role=pilot"])
    other = policies.fake(users.pilot, "pilot", ["/atlas/Role=production"])
    for proxy in (full, short):
        done, _ = policies.logon(users.pilot, "pilot", "fqan", proxy=proxy)
        assert done.returncode == 0, (proxy.name, done.stderr)
    done, _ = policies.logon(users.pilot, "pilot", "fqan", proxy=other)
    assert done.returncode != 0 and REFUSED in done.stderr


def test_fqan_written_short_only_misses_the_full_spelling(policies, users):
    """Why fqan_policy accepts both spellings: the server compares the whole FQAN string."""
    policies.store("fqan-exact", fqan_policy("/atlas/Role=pilot", exact=True))
    full = policies.fake(users.pilot, "pilot", ["/atlas/Role=pilot/Capability=NULL"])
    done, _ = policies.logon(users.pilot, "pilot", "fqan-exact", proxy=full)
    assert done.returncode != 0 and REFUSED in done.stderr
