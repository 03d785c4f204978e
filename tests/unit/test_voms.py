"""Reading VOMS attribute certificates out of proxy chains (no grid tools: ACs built here).

The system tests (tests/system/test_voms_proxy_info.py) compare with ``voms-proxy-info`` on
proxies made by the real ``voms-proxy-fake``.
"""

from __future__ import annotations

import datetime
import json

import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotid.errors import ProxyFileError
from pilotid.identity.testca import name_from_slash
from pilotid.identity.voms import (
    VOMS_AC_EXTENSION_OID,
    VOMS_FQAN_ATTRIBUTE_OID,
    VomsAttributes,
    voms_attributes,
)

USER_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
VOMS_DN = "/DC=org/DC=example/CN=voms.example.org"
NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
KEY = ec.generate_private_key(ec.SECP256R1())


def _general_names(dn):
    name = asn1_x509.Name.load(name_from_slash(dn).public_bytes())
    return asn1_x509.GeneralNames([asn1_x509.GeneralName(name="directory_name", value=name)])


def make_ac(fqans=("/atlas/Role=pilot",), authority="atlas://voms.example.org:15000",
            issuer=VOMS_DN, hours=12, serial=7, values=None, attribute_oid=None):
    """DER of a VOMS-style attribute certificate (signature not real: the parser does not check)."""
    if values is None:
        values = [cms.IetfAttrValue(name="octets", value=f.encode()) for f in fqans]
    syntax = {"values": values}
    if authority is not None:
        syntax["policy_authority"] = [
            asn1_x509.GeneralName(name="uniform_resource_identifier", value=authority)]
    info = cms.AttributeCertificateInfoV2({
        "version": "v2",
        "holder": {"base_certificate_id": {"issuer": _general_names(USER_DN), "serial": 4242}},
        "issuer": cms.AttCertIssuer(name="v2_form", value={"issuer_name": _general_names(issuer)}),
        "signature": {"algorithm": "sha256_rsa"},
        "serial_number": serial,
        "att_cert_validity_period": {
            "not_before_time": core.GeneralizedTime(NOW - datetime.timedelta(minutes=5)),
            "not_after_time": core.GeneralizedTime(NOW + datetime.timedelta(hours=hours))},
        "attributes": [{"type": attribute_oid or VOMS_FQAN_ATTRIBUTE_OID,
                        "values": [core.Any(cms.IetfAttrSyntax(syntax))]}],
    })
    return cms.AttributeCertificateV2({
        "ac_info": info, "signature_algorithm": {"algorithm": "sha256_rsa"},
        "signature": b"\x00" * 16}).dump()


def voms_extension(*acs):
    """VOMS's AC_SEQ: SEQUENCE { SEQUENCE OF AttributeCertificate }."""
    return _sequence(_sequence(b"".join(acs)))


def _sequence(content):
    n = len(content)
    if n < 0x80:
        return b"\x30" + bytes([n]) + content
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\x30" + bytes([0x80 | len(body)]) + body + content


def proxy_cert(subject=USER_DN + "/CN=123", extension=None):
    builder = (x509.CertificateBuilder()
               .subject_name(name_from_slash(subject)).issuer_name(name_from_slash(USER_DN))
               .public_key(KEY.public_key()).serial_number(123)
               .not_valid_before(NOW - datetime.timedelta(hours=1))
               .not_valid_after(NOW + datetime.timedelta(hours=12)))
    if extension is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(VOMS_AC_EXTENSION_OID), extension),
            critical=False)
    return builder.sign(KEY, hashes.SHA256())


def test_reads_vo_fqans_issuer_uri_and_validity():
    fqans = ("/atlas/Role=production", "/atlas", "/atlas/usatlas")
    (found,) = voms_attributes([proxy_cert(extension=voms_extension(make_ac(fqans=fqans)))])
    assert found.vo == "atlas"
    assert found.fqans == fqans
    assert found.primary_fqan == "/atlas/Role=production"
    assert found.issuer == VOMS_DN
    assert found.uri == "voms.example.org:15000"
    assert found.not_before == NOW - datetime.timedelta(minutes=5)
    assert found.not_after == NOW + datetime.timedelta(hours=12)
    assert found.not_after.tzinfo is not None
    assert found.serial == 7
    assert (found.holder_issuer, found.holder_serial) == (USER_DN, 4242)


def test_time_left_counts_from_now():
    (found,) = voms_attributes([proxy_cert(extension=voms_extension(make_ac(hours=2)))])
    assert found.time_left(NOW) == datetime.timedelta(hours=2)
    assert found.time_left(NOW + datetime.timedelta(hours=3)) < datetime.timedelta(0)


def test_authority_without_host_gives_no_uri():
    """voms-proxy-fake without -uri writes the policyAuthority 'atlas:'."""
    (found,) = voms_attributes([proxy_cert(extension=voms_extension(make_ac(authority="atlas:")))])
    assert (found.vo, found.uri) == ("atlas", None)


def test_missing_authority_takes_the_vo_from_the_first_fqan():
    ac = make_ac(fqans=("/cms/Role=pilot",), authority=None)
    (found,) = voms_attributes([proxy_cert(extension=voms_extension(ac))])
    assert (found.vo, found.uri) == ("cms", None)


def test_several_vos_give_one_entry_each_in_order():
    acs = voms_extension(make_ac(), make_ac(fqans=("/cms/Role=pilot/Capability=NULL",),
                                            authority="cms://voms.example.org:15001", serial=8))
    found = voms_attributes([proxy_cert(extension=acs)])
    assert [(a.vo, a.fqans) for a in found] == [
        ("atlas", ("/atlas/Role=pilot",)), ("cms", ("/cms/Role=pilot/Capability=NULL",))]


def test_attributes_of_a_proxy_delegated_from_a_voms_proxy_come_from_its_parent():
    parent = proxy_cert(extension=voms_extension(make_ac()))
    child = proxy_cert(subject=USER_DN + "/CN=123/CN=456")
    (found,) = voms_attributes([child, parent])
    assert found.fqans == ("/atlas/Role=pilot",)


def test_plain_proxy_has_no_voms_attributes():
    assert voms_attributes([proxy_cert()]) == ()
    assert voms_attributes([]) == ()


def test_utf8_string_fqans_are_read_too():
    ac = make_ac(values=[cms.IetfAttrValue(name="string", value="/atlas/Role=pilot")])
    (found,) = voms_attributes([proxy_cert(extension=voms_extension(ac))])
    assert found.fqans == ("/atlas/Role=pilot",)


def test_as_dict_is_json_ready():
    (found,) = voms_attributes([proxy_cert(extension=voms_extension(make_ac(hours=1)))])
    data = json.loads(json.dumps(found.as_dict(NOW)))
    assert data["vo"] == "atlas" and data["fqans"] == ["/atlas/Role=pilot"]
    assert data["time_left"] == 3600 and data["uri"] == "voms.example.org:15000"


def test_attributes_are_frozen():
    (found,) = voms_attributes([proxy_cert(extension=voms_extension(make_ac()))])
    assert isinstance(found, VomsAttributes)
    with pytest.raises(AttributeError):
        found.vo = "cms"


# ---------------------------------------------------------------- malformed extensions

def _malformed(value):
    with pytest.raises(ProxyFileError) as raised:
        voms_attributes([proxy_cert(extension=value)])
    message = str(raised.value)
    assert VOMS_AC_EXTENSION_OID in message and "recreate" in message
    assert "\n" not in message
    return message


def test_garbage_extension_is_a_proxy_file_error():
    _malformed(b"not DER at all")


def test_truncated_extension_is_a_proxy_file_error():
    _malformed(voms_extension(make_ac())[:-20])


def test_trailing_bytes_after_the_sequence_are_refused():
    _malformed(voms_extension(make_ac()) + b"\x00\x00")


def test_sequence_of_something_else_is_refused():
    _malformed(core.Sequence.load(b"\x30\x05\x30\x03\x02\x01\x05").dump())


def test_empty_ac_list_is_refused():
    assert "no attribute certificate" in _malformed(b"\x30\x02\x30\x00")


def test_ac_without_fqan_attribute_is_refused():
    assert "no FQAN attribute" in _malformed(voms_extension(make_ac(attribute_oid="1.2.3.4")))


def test_fqan_that_is_not_utf8_is_refused():
    ac = make_ac(values=[cms.IetfAttrValue(name="octets", value=b"/atlas/\xff\xfe")])
    assert "not UTF-8" in _malformed(voms_extension(ac))


def test_the_message_names_the_certificate():
    assert USER_DN in _malformed(b"\x30\x00")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_never_raise_anything_but_proxy_file_error(blob):
    try:
        voms_attributes([proxy_cert(extension=blob)])
    except ProxyFileError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_damaged_real_extension_never_leaks_asn1_errors(data):
    good = bytearray(voms_extension(make_ac(fqans=("/atlas/Role=pilot", "/atlas"))))
    position = data.draw(st.integers(0, len(good) - 1))
    good[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(good)))
    try:
        voms_attributes([proxy_cert(extension=bytes(good[:cut]))])
    except ProxyFileError:
        pass
