"""The MYPROXYv2 wire format: requests, replies, chains, INFO and trust-root fields."""

from __future__ import annotations

import base64
import datetime
import pickle

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotid.errors import CredentialError, CredentialServerError, PilotidError
from pilotid.identity.myproxy.wire import (
    BufferSource,
    Command,
    Passphrase,
    ResponseType,
    build_request,
    encode_chain,
    parse_chain,
    parse_info,
    parse_reply,
    parse_trustroots,
    read_chain,
    read_reply,
    redact_request,
)
from pilotid.identity.testca import make_proxy


def lines(request: bytes):
    assert request.endswith(b"\0") and request.count(b"\0") == 1
    return request[:-1].decode().splitlines()


def test_request_starts_with_the_five_fixed_lines_and_ends_with_one_nul():
    request = build_request(Command.GET, "alice", None, 3600)
    assert lines(request) == ["VERSION=MYPROXYv2", "COMMAND=0", "USERNAME=alice",
                              "PASSPHRASE=", "LIFETIME=3600"]


def test_credential_name_travels_as_cred_name_not_glued_to_the_username():
    """MyProxyClient 2.2.0 sent USERNAME=alice-pilotcred; the server wants CRED_NAME."""
    request = build_request(Command.GET, "alice", None, 3600, [("CRED_NAME", "pilotcred")])
    assert "USERNAME=alice" in lines(request)
    assert "CRED_NAME=pilotcred" in lines(request)


def test_store_request_carries_policy_name_and_description_in_order():
    fields = [("CRED_NAME", "c"), ("CRED_DESC", "for pilots"),
              ("RETRIEVER_TRUSTED", "/DC=org/CN=Pilot")]
    assert lines(build_request(Command.STORE, "alice", None, 7200, fields))[5:] == [
        "CRED_NAME=c", "CRED_DESC=for pilots", "RETRIEVER_TRUSTED=/DC=org/CN=Pilot"]


@pytest.mark.parametrize("value", ["alice\nRETRIEVER_TRUSTED=*", "alice\0", "a\nb"])
def test_a_value_with_a_newline_or_nul_is_refused_rather_than_smuggled(value):
    with pytest.raises(CredentialError, match="newline or NUL"):
        build_request(Command.GET, value)
    with pytest.raises(CredentialError, match="newline or NUL"):
        build_request(Command.GET, "alice", fields=[("CRED_NAME", value)])


def test_negative_lifetime_is_refused():
    with pytest.raises(CredentialError, match="negative"):
        build_request(Command.GET, "alice", lifetime=-1)


def test_passphrase_is_on_the_wire_but_never_in_repr_str_or_redacted_request():
    secret = Passphrase("s3cret-phrase")
    request = build_request(Command.GET, "alice", secret, 60)
    assert "PASSPHRASE=s3cret-phrase" in lines(request)
    assert "s3cret" not in repr(secret) and "s3cret" not in str(secret)
    assert "s3cret" not in redact_request(request)
    assert "PASSPHRASE=****" in redact_request(request)
    assert "s3cret" not in f"{secret!r} {secret}"


def test_passphrase_cannot_be_pickled_into_a_cache_or_log():
    with pytest.raises(TypeError):
        pickle.dumps(Passphrase("s3cret-phrase"))


def test_passphrase_with_a_newline_is_refused():
    with pytest.raises(CredentialError):
        Passphrase("a\nPASSPHRASE=b")


def test_ok_reply_parses():
    reply = parse_reply(b"VERSION=MYPROXYv2\nRESPONSE=0\n\0")
    assert reply.ok and reply.response is ResponseType.OK and reply.error == ""


def test_multi_line_error_reply_is_joined_in_order():
    reply = parse_reply(b"VERSION=MYPROXYv2\nRESPONSE=1\nERROR=no passphrase\n"
                        b"ERROR=authentication failed\n\0")
    assert reply.response is ResponseType.ERROR
    assert reply.error == "no passphrase\nauthentication failed"


def test_error_value_may_itself_contain_equals_signs():
    reply = parse_reply(b"VERSION=MYPROXYv2\nRESPONSE=1\nERROR=a=b\n")
    assert reply.error == "a=b"


@pytest.mark.parametrize("data, match", [
    (b"VERSION=MYPROXYv1\nRESPONSE=0\n", "protocol version"),
    (b"RESPONSE=0\n", "protocol version"),
    (b"VERSION=MYPROXYv2\n", "RESPONSE"),
    (b"VERSION=MYPROXYv2\nRESPONSE=7\n", "RESPONSE"),
    (b"VERSION=MYPROXYv2\nRESPONSE=0\nthis is not a field\n", "malformed"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "malformed"),
    (b"VERSION=MYPROXYv2\0RESPONSE=0\n", "NUL"),
])
def test_anything_else_is_a_server_error(data, match):
    with pytest.raises(CredentialServerError, match=match):
        parse_reply(data)


def test_stray_nul_before_the_first_reply_is_skipped():
    source = BufferSource(b"\0VERSION=MYPROXYv2\nRESPONSE=0\n\0"
                          b"VERSION=MYPROXYv2\nRESPONSE=1\nERROR=x\n\0")
    assert read_reply(source).ok
    assert read_reply(source).error == "x"


def test_reply_without_its_nul_is_truncated():
    with pytest.raises(CredentialServerError, match="terminating NUL"):
        read_reply(BufferSource(b"VERSION=MYPROXYv2\nRESPONSE=0\n"))


def test_reply_over_the_limit_is_refused():
    with pytest.raises(CredentialServerError, match="longer than"):
        read_reply(BufferSource(b"VERSION=MYPROXYv2\n" + b"X" * 100), limit=50)


@pytest.fixture(scope="module")
def chain(users):
    """Proxy, alice's certificate and the CA certificate (three real DER certificates)."""
    pem = make_proxy(users.alice, bits=1024)
    return x509.load_pem_x509_certificates(pem) + [users.ca.certificate]


def test_chain_round_trips_and_leaves_the_final_reply_after_it(chain):
    final = b"VERSION=MYPROXYv2\nRESPONSE=0\n\0"
    parsed, rest = parse_chain(encode_chain(chain) + final)
    assert parsed == chain
    assert rest == final


def test_chain_is_read_by_der_length_not_by_record_boundaries(chain):
    data = encode_chain(chain)
    assert data[0] == 3 and data[1] == 0x30 and data[2] == 0x82  # long-form length


def test_truncated_chain_is_a_server_error(chain):
    data = encode_chain(chain)
    for cut in (0, 1, 3, len(data) // 2, len(data) - 1):
        with pytest.raises(CredentialServerError, match="ended"):
            parse_chain(data[:cut])


def test_chain_that_is_not_der_is_a_server_error():
    with pytest.raises(CredentialServerError, match="not DER"):
        parse_chain(b"\x01VERSION=MYPROXYv2\n")


def test_empty_chain_is_a_server_error():
    with pytest.raises(CredentialServerError, match="empty"):
        parse_chain(b"\x00")


def test_der_that_is_not_a_certificate_is_a_server_error():
    with pytest.raises(CredentialServerError, match="does not parse"):
        parse_chain(b"\x01\x30\x03\x02\x01\x00")


def test_encode_chain_refuses_nothing_or_too_much(chain):
    with pytest.raises(CredentialError):
        encode_chain([])
    with pytest.raises(CredentialError):
        encode_chain(chain * 100)


INFO = (b"VERSION=MYPROXYv2\nRESPONSE=0\n"
        b"CRED_NAME=long\nCRED_START_TIME=1700000000\nCRED_END_TIME=1700003600\n"
        b"CRED_OWNER=/DC=org/DC=example/CN=Alice\nCRED_RETRIEVER_TRUSTED=/CN=A|/CN=B\n"
        b"CRED_pilot_cred_DESC=for pilots\nCRED_pilot_cred_START_TIME=1700000000\n"
        b"CRED_pilot_cred_END_TIME=1700086400\nCRED_pilot_cred_OWNER=/DC=org/DC=example/CN=Alice\n"
        b"CRED_pilot_cred_RETRIEVER_TRUSTED=FQAN:/atlas/Role=pilot\n"
        b"ADDL_CREDS=pilot_cred\n\0")


def test_info_reply_lists_first_and_additional_credentials():
    first, second = parse_info(parse_reply(INFO))
    assert first.name == "long" and first.retriever_trusted == "/CN=A|/CN=B"
    assert first.start == datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.timezone.utc)
    assert first.end - first.start == datetime.timedelta(hours=1)
    assert second.name == "pilot_cred" and second.description == "for pilots"
    assert second.retriever_trusted == "FQAN:/atlas/Role=pilot"
    assert second.owner == "/DC=org/DC=example/CN=Alice"
    assert second.as_dict()["end"] == "2023-11-15T22:13:20+00:00"


def test_default_credential_has_no_name():
    reply = parse_reply(b"VERSION=MYPROXYv2\nRESPONSE=0\nCRED_START_TIME=1\nCRED_END_TIME=2\n"
                        b"CRED_OWNER=/CN=x\n")
    (only,) = parse_info(reply)
    assert only.name is None and only.owner == "/CN=x"


def test_info_without_credentials_is_an_empty_list():
    assert parse_info(parse_reply(b"VERSION=MYPROXYv2\nRESPONSE=0\n")) == []


def test_info_time_that_is_not_a_number_is_a_server_error():
    reply = parse_reply(b"VERSION=MYPROXYv2\nRESPONSE=0\nCRED_START_TIME=soon\n")
    with pytest.raises(CredentialServerError, match="CRED_START_TIME"):
        parse_info(reply)


def test_trust_roots_are_decoded_and_unsafe_names_dropped():
    data = {"abcd1234.0": b"-----BEGIN CERTIFICATE-----\n", "abcd1234.signing_policy": b"p"}
    text = "VERSION=MYPROXYv2\nRESPONSE=0\nTRUSTED_CERTS=abcd1234.0,abcd1234.signing_policy,"
    text += "../evil,.hidden\n"
    for name, content in data.items():
        text += f"FILEDATA_{name}={base64.b64encode(content).decode()}\n"
    text += f"FILEDATA_../evil={base64.b64encode(b'x').decode()}\n"
    assert parse_trustroots(parse_reply(text.encode())) == data


def test_trust_root_listed_without_data_is_a_server_error():
    reply = parse_reply(b"VERSION=MYPROXYv2\nRESPONSE=0\nTRUSTED_CERTS=a.0\n")
    with pytest.raises(CredentialServerError, match="no FILEDATA"):
        parse_trustroots(reply)


# --- fuzz: whatever the server sends, the parsers raise pilotid errors only

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_reply_parser_raises_only_pilotid_errors(data):
    try:
        parse_reply(data)
    except PilotidError:
        pass


_line = st.builds(
    lambda k, v: f"{k}={v}",
    st.sampled_from(["VERSION", "RESPONSE", "ERROR", "CRED_NAME", "CRED_START_TIME",
                     "CRED_END_TIME", "ADDL_CREDS", "CRED_x_START_TIME", "CRED_x_END_TIME",
                     "TRUSTED_CERTS", "FILEDATA_a.0", "AUTHORIZATION_DATA"]),
    st.one_of(st.sampled_from(["MYPROXYv2", "0", "1", "2", "x", "a.0", "1700000000",
                               "99999999999999999999", "-1", "", "a.0,b.0", "@@"]),
              st.text(max_size=20)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_line, max_size=12), st.booleans())
def test_structured_replies_parse_or_raise_pilotid_errors(reply_lines, stray):
    data = ("\n".join(reply_lines) + "\n").encode("utf-8", "surrogateescape") + b"\0"
    try:
        reply = read_reply(BufferSource((b"\0" if stray else b"") + data))
        parse_info(reply)
        parse_trustroots(reply)
    except PilotidError:
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600))
def test_chain_reader_raises_only_pilotid_errors(data):
    try:
        read_chain(BufferSource(data))
    except PilotidError:
        pass
