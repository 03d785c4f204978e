"""Fuzzing what pilotid reads from others: proxies, MyProxy replies and chains, job
descriptions.  Whatever the bytes, a parser returns a value or raises one of pilotid's own
errors (``PilotidError``): never a ``ValueError`` of a library, an ``IndexError``, a hang.

Bounded: each property runs ``EXAMPLES`` examples (``PILOTID_FUZZ_EXAMPLES`` overrides,
for a longer campaign); the huge inputs are fixed cases with a time limit.
"""

from __future__ import annotations

import base64
import json
import os
import time

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotid.errors import PilotidError
from pilotid.identity import myproxy
from pilotid.identity.myproxy import BufferSource, ClientCredential, parse_reply
from pilotid.identity.proxy import parse_proxy
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.payloads.job import JobSpec, load_job

EXAMPLES = int(os.environ.get("PILOTID_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

_CA = TestCA(bits=1024)
_USER = _CA.issue("/DC=org/DC=example/OU=People/CN=Fuzz Target 1", bits=1024)
PROXY = make_proxy(_USER, bits=1024)
CHAIN_DER = [c.public_bytes(serialization.Encoding.DER)
             for c in (_USER.certificate, _CA.certificate)]
GENERATED = {"count": 0}


def only_pilotid_errors(parse, data) -> None:
    """Call ``parse(data)``: a result or a PilotidError is fine, anything else fails."""
    GENERATED["count"] += 1
    try:
        parse(data)
    except PilotidError:
        pass


# -- mutations of real inputs -----------------------------------------------------------

def _mutate(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for kind, position, value in edits:
        if not buf:
            break
        at = position % len(buf)
        if kind == "flip":
            buf[at] ^= 1 << (value % 8)
        elif kind == "set":
            buf[at] = value % 256
        elif kind == "delete":
            del buf[at:at + 1 + value % 64]
        elif kind == "insert":
            buf[at:at] = bytes([value % 256]) * (1 + value % 16)
        elif kind == "truncate":
            del buf[at:]
        elif kind == "duplicate":
            buf[at:at] = buf[at:at + 1 + value % 512]
    return bytes(buf)


edits = st.lists(st.tuples(st.sampled_from(["flip", "set", "delete", "insert", "truncate",
                                            "duplicate"]),
                           st.integers(0, 1 << 20), st.integers(0, 255)),
                 min_size=1, max_size=8)


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return (f"-----BEGIN {label}-----\n".encode() + b"\n".join(lines)
            + f"\n-----END {label}-----\n".encode())


def _blocks(pem: bytes) -> list:
    """(label, DER) of each PEM block of ``pem``."""
    found, text = [], pem.decode()
    while "-----BEGIN " in text:
        head, _, text = text.partition("-----BEGIN ")
        label, _, text = text.partition("-----\n")
        body, _, text = text.partition(f"-----END {label}-----\n")
        found.append((label, base64.b64decode(body)))
    return found


@FUZZ
@given(edits)
def test_proxy_parser_on_damaged_pem_raises_only_pilotid_errors(changes):
    only_pilotid_errors(parse_proxy, _mutate(PROXY, changes))


@FUZZ
@given(st.integers(0, 2), edits)
def test_proxy_parser_on_damaged_der_raises_only_pilotid_errors(which, changes):
    """Valid PEM armour around bad DER: the certificate or the key damaged inside."""
    blocks = _blocks(PROXY)
    label, der = blocks[which]
    blocks[which] = (label, _mutate(der, changes))
    only_pilotid_errors(parse_proxy, b"".join(_pem(lab, d) for lab, d in blocks))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["CERTIFICATE", "PRIVATE KEY", "RSA PRIVATE KEY",
                                           "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
                                           "X509 CERTIFICATE", "CERTIFICATE REQUEST", ""]),
                          st.binary(max_size=300)), max_size=6),
       st.sampled_from([b"\n", b"\r\n"]))
def test_proxy_parser_on_arbitrary_pem_blocks_raises_only_pilotid_errors(blocks, newline):
    data = b"".join(_pem(label, der) for label, der in blocks).replace(b"\n", newline)
    only_pilotid_errors(parse_proxy, data)


@FUZZ
@given(edits)
def test_client_credential_on_damaged_pem_raises_only_pilotid_errors(changes):
    only_pilotid_errors(ClientCredential.from_pem, _mutate(PROXY, changes))


@pytest.mark.parametrize("name,data", [
    ("16 MB of one certificate, repeated",
     _pem("CERTIFICATE", CHAIN_DER[0]) * (16 * 1024 * 1024 // 1200)),
    ("16 MB random bytes", os.urandom(16 * 1024 * 1024)),
    ("1 M empty BEGIN lines", b"-----BEGIN CERTIFICATE-----\n" * (1 << 20)),
    ("one 8 MB base64 block", _pem("CERTIFICATE", os.urandom(6 * 1024 * 1024))),
    ("a key with a 64 kbit modulus claim", _pem("PRIVATE KEY", b"\x30\x84\x7f\xff\xff\xff")
     + PROXY),
])
def test_huge_proxy_inputs_fail_fast_with_pilotid_errors(name, data):
    started = time.monotonic()
    only_pilotid_errors(parse_proxy, data)
    assert time.monotonic() - started < 20, f"{name}: too slow"


# -- MyProxy ---------------------------------------------------------------------------

REPLIES = [
    b"VERSION=MYPROXYv2\nRESPONSE=0\n\0",
    b"VERSION=MYPROXYv2\nRESPONSE=1\nERROR=No credentials exist for username \"x\".\n\0",
    b"VERSION=MYPROXYv2\nRESPONSE=0\nCRED_START_TIME=1700000000\nCRED_END_TIME=1800000000\n"
    b"CRED_OWNER=/DC=org/CN=A\nCRED_NAME=one\nADDL_CREDS=two\nCRED_two_START_TIME=1\n"
    b"CRED_two_END_TIME=2\nCRED_two_OWNER=/CN=B\n\0",
    b"VERSION=MYPROXYv2\nRESPONSE=0\nTRUSTED_CERTS=a.0,b.signing_policy\nFILEDATA_a.0="
    + base64.b64encode(b"certificate") + b"\nFILEDATA_b.signing_policy=cG9saWN5\n\0",
]


def _reply_consumers(data: bytes) -> None:
    reply = parse_reply(data)
    myproxy.parse_info(reply)
    myproxy.parse_trustroots(reply)
    reply.ok, reply.error, reply.values("ERROR")  # noqa: B018


@FUZZ
@given(st.sampled_from(REPLIES), edits)
def test_myproxy_reply_parsers_on_damaged_replies_raise_only_pilotid_errors(reply, changes):
    only_pilotid_errors(_reply_consumers, _mutate(reply, changes))


@FUZZ
@given(st.dictionaries(st.sampled_from(["CRED_START_TIME", "CRED_END_TIME", "CRED_NAME",
                                        "ADDL_CREDS", "CRED_x_START_TIME", "CRED_x_END_TIME",
                                        "TRUSTED_CERTS", "FILEDATA_x", "ERROR", "RESPONSE"]),
                       st.text(max_size=40).filter(lambda t: "\n" not in t and "\0" not in t)))
def test_myproxy_info_and_trustroots_on_odd_fields_raise_only_pilotid_errors(fields):
    body = "".join(f"{k}={v}\n" for k, v in fields.items())
    if "RESPONSE" not in fields:
        body += "RESPONSE=0\n"
    only_pilotid_errors(_reply_consumers, ("VERSION=MYPROXYv2\n" + body).encode() + b"\0")


def _chain(data: bytes) -> None:
    chain, _ = myproxy.parse_chain(data)
    myproxy.identity_of(chain)
    [myproxy.is_proxy(c) for c in chain]  # noqa: B018


@FUZZ
@given(edits)
def test_myproxy_chain_reader_on_damaged_chains_raises_only_pilotid_errors(changes):
    chain = bytes([len(CHAIN_DER)]) + b"".join(CHAIN_DER)
    only_pilotid_errors(_chain, _mutate(chain, changes))


@pytest.mark.parametrize("name,data", [
    ("16 MB reply without its NUL", b"VERSION=MYPROXYv2\n" + b"A" * (16 * 1024 * 1024 + 10)),
    ("1 M empty messages", b"\0" * (1 << 20)),
    ("a chain announcing 255 certificates of 64 KiB", b"\xff" + (b"\x30\x83\x01\x00\x00"
                                                                 + b"\0" * 65536) * 255),
    ("a certificate claiming 4 GiB", b"\x01\x30\x84\xff\xff\xff\xff" + b"\0" * 1000),
])
def test_huge_myproxy_inputs_fail_fast_with_pilotid_errors(name, data):
    started = time.monotonic()
    only_pilotid_errors(lambda d: myproxy.read_reply(BufferSource(d)), data)
    only_pilotid_errors(_chain, data)
    assert time.monotonic() - started < 20, f"{name}: too slow"


# -- job descriptions ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
FIELDS = ["PandaID", "transformation", "jobPars", "prodUserID", "credname", "myproxy",
          "homepackage", "swRelease", "inFiles", "outFiles", "logFile", "prodSourceLabel",
          "maxCpuCount"]


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=len(FIELDS)))
def test_job_parser_on_odd_field_values_raises_only_job_description_errors(description):
    only_pilotid_errors(JobSpec.from_description, description)


@FUZZ
@given(st.binary(max_size=300) | st.builds(lambda v: json.dumps(v).encode(), json_values))
def test_job_file_loader_on_odd_bytes_raises_only_job_description_errors(tmp_path_factory,
                                                                          data):
    path = tmp_path_factory.mktemp("job") / "job.json"
    path.write_bytes(data)
    only_pilotid_errors(load_job, path)
