"""The proxy model: what it reports for each kind of proxy, and how it refuses bad files."""

from __future__ import annotations

import datetime
import errno
import json
import os
import re
from pathlib import Path

import mock
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from pilotid.errors import ProxyExpiredError, ProxyFileError, ProxyKeyError
from pilotid.identity import proxy as proxy_module
from pilotid.identity import testca
from pilotid.identity.dn import normalise_dn, slash_dn
from pilotid.identity.proxy import (
    END_ENTITY,
    LEGACY_LIMITED_PROXY,
    LEGACY_PROXY,
    RFC3820_INDEPENDENT_PROXY,
    RFC3820_LIMITED_PROXY,
    RFC3820_PROXY,
    ProxyInfo,
    format_time_left,
    load_proxy,
    parse_proxy,
)
from pilotid.identity.testca import Identity, make_proxy
from tests.conftest import ALICE_DN, BOB_DN

UTC = datetime.timezone.utc


def _blocks(pem: bytes):
    return re.findall(rb"-----BEGIN [^-]+-----.*?-----END [^-]+-----\n", pem, re.S)


def _as_identity(pem: bytes) -> Identity:
    """The proxy in ``pem`` as an issuer for a further proxy."""
    cert = x509.load_pem_x509_certificate(pem)
    key_block = [b for b in _blocks(pem) if b"PRIVATE KEY" in b][0]
    key = serialization.load_pem_private_key(key_block, password=None)
    return Identity(slash_dn(cert.subject), cert, key)


@pytest.fixture(scope="session")
def proxies(users):
    """PEM bytes of proxies of every kind, made once (1024-bit keys: fast)."""
    made = {
        "rfc": make_proxy(users.alice, bits=1024),
        "rfc_limited": make_proxy(users.alice, bits=1024, limited=True),
        "legacy": make_proxy(users.alice, bits=1024, rfc=False),
        "legacy_limited": make_proxy(users.alice, bits=1024, rfc=False, limited=True),
        "bob": make_proxy(users.bob, bits=1024),
        "expired": make_proxy(users.alice, bits=1024, not_after=datetime.datetime.now(UTC)
                              - datetime.timedelta(hours=2)),
        "short": make_proxy(users.alice, bits=1024, hours=0.05),
        "bob_short": make_proxy(users.bob, bits=1024, hours=0.05),
    }
    made["chained"] = make_proxy(_as_identity(made["rfc"]), chain=[users.alice.certificate],
                                 bits=1024, hours=6)
    made["eec"] = (users.alice.certificate.public_bytes(serialization.Encoding.PEM)
                   + users.alice.key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    return made


def _write(tmp_path: Path, data: bytes, name: str = "x509up") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(0o600)
    return path


# --- slash form -------------------------------------------------------------------------

def _name(*attributes) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def test_slash_dn_keeps_spaces_quotes_and_parentheses_as_they_are():
    name = _name((NameOID.DOMAIN_COMPONENT, "org"), (NameOID.COMMON_NAME, "Bob O'Builder (Test)"))
    assert slash_dn(name) == "/DC=org/CN=Bob O'Builder (Test)"


def test_slash_dn_escapes_slash_and_plus_inside_a_value_as_openssl_3_does():
    name = _name((NameOID.COMMON_NAME, "host/with/slash"), (NameOID.COMMON_NAME, "c+d"))
    assert slash_dn(name) == r"/CN=host\/with\/slash/CN=c\+d"


def test_slash_dn_leaves_comma_equals_and_backslash_alone():
    name = _name((NameOID.COMMON_NAME, 'a=b, "q" <x> #h \\bs'))
    assert slash_dn(name) == '/CN=a=b, "q" <x> #h \\bs'


def test_slash_dn_shows_non_ascii_and_control_bytes_as_hex():
    name = _name((NameOID.COMMON_NAME, "José\tM"))
    assert slash_dn(name) == r"/CN=Jos\xC3\xA9\x09M"


def test_slash_dn_shows_a_bmpstring_by_its_encoded_bytes():
    attribute = x509.NameAttribute(NameOID.COMMON_NAME, "bmp", _type=x509.name._ASN1Type.BMPString)
    assert slash_dn(x509.Name([attribute])) == r"/CN=\x00b\x00m\x00p"


def test_slash_dn_joins_a_multi_valued_rdn_with_plus():
    rdn = x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "Multi"),
                                          x509.NameAttribute(NameOID.USER_ID, "mu42")])
    assert slash_dn(x509.Name([rdn])) == "/CN=Multi+UID=mu42"


def test_slash_dn_uses_openssl_short_names_and_dotted_unknown_oids():
    name = _name((NameOID.EMAIL_ADDRESS, "a@b.org"), (NameOID.SERIAL_NUMBER, "12"),
                 (x509.ObjectIdentifier("1.2.3.4.5"), "odd"))
    assert slash_dn(name) == "/emailAddress=a@b.org/serialNumber=12/1.2.3.4.5=odd"


def test_normalise_dn_turns_text_into_the_escaped_slash_form():
    assert normalise_dn("/CN=José") == r"/CN=Jos\xC3\xA9"
    assert normalise_dn(r"/CN=Jos\xC3\xA9") == r"/CN=Jos\xC3\xA9"


def test_time_left_is_formatted_as_grid_proxy_info_does():
    assert format_time_left(datetime.timedelta(seconds=43197)) == "11:59:57"
    assert format_time_left(datetime.timedelta(hours=24)) == "24:00:00"
    assert format_time_left(datetime.timedelta(seconds=604793)) == "167:59:53  (7.0 days)"
    assert format_time_left(datetime.timedelta(seconds=-5)) == "0:00:00"


# --- what a proxy reports ---------------------------------------------------------------

@pytest.mark.parametrize("kind, expected", [
    ("rfc", RFC3820_PROXY), ("rfc_limited", RFC3820_LIMITED_PROXY),
    ("legacy", LEGACY_PROXY), ("legacy_limited", LEGACY_LIMITED_PROXY),
    ("eec", END_ENTITY),
])
def test_proxy_type_is_told_from_the_certificate(proxies, kind, expected):
    assert parse_proxy(proxies[kind]).proxy_type == expected


def test_an_independent_proxy_is_its_own_identity(users):
    independent = bytes.fromhex("06082b06010505071502")
    with mock.patch.object(testca, "_LIMITED", independent):
        info = parse_proxy(make_proxy(users.alice, bits=1024, limited=True))
    assert info.proxy_type == RFC3820_INDEPENDENT_PROXY
    assert info.identity == info.subject != ALICE_DN
    assert not info.is_limited


def test_limited_proxies_are_limited_and_full_ones_are_not(proxies):
    assert parse_proxy(proxies["rfc_limited"]).is_limited
    assert parse_proxy(proxies["legacy_limited"]).is_limited
    assert not parse_proxy(proxies["rfc"]).is_limited
    assert not parse_proxy(proxies["legacy"]).is_limited


def test_an_end_entity_credential_is_not_a_proxy(proxies):
    info = parse_proxy(proxies["eec"])
    assert not info.is_proxy
    assert info.identity == info.subject == ALICE_DN
    assert info.issuer == "/DC=org/DC=example/CN=pilotid Test CA"


def test_rfc_proxy_reports_subject_issuer_identity_key_size_and_chain(proxies):
    info = parse_proxy(proxies["rfc"])
    assert info.is_proxy
    assert info.issuer == ALICE_DN
    assert re.fullmatch(re.escape(ALICE_DN) + r"/CN=\d+", info.subject)
    assert info.identity == ALICE_DN
    assert info.key_bits == 1024
    assert info.chain_length == 2
    assert info.certificates[0].subject.rdns[-1] != info.certificates[1].subject.rdns[-1]


def test_identity_with_quotes_and_parentheses_is_the_users_dn(proxies):
    assert parse_proxy(proxies["bob"]).identity == BOB_DN


def test_proxy_of_a_proxy_names_the_user_and_counts_the_whole_chain(proxies):
    info = parse_proxy(proxies["chained"])
    assert info.identity == ALICE_DN
    assert info.issuer == parse_proxy(proxies["rfc"]).subject
    assert info.chain_length == 3


def test_not_after_is_the_earliest_end_in_the_chain(users):
    short_lived_user = users.ca.issue(ALICE_DN, bits=1024, days=1)
    info = parse_proxy(make_proxy(short_lived_user, bits=1024, hours=48))
    assert info.not_after == short_lived_user.certificate.not_valid_after_utc
    assert info.not_after < info.certificates[0].not_valid_after_utc


def test_times_are_timezone_aware_and_time_left_counts_down(proxies):
    info = parse_proxy(proxies["rfc"])
    assert info.not_before.tzinfo is not None and info.not_after.tzinfo is not None
    later = datetime.datetime.now(UTC) + datetime.timedelta(hours=1)
    assert info.time_left(later) < info.time_left()
    assert info.time_left(info.not_after + datetime.timedelta(seconds=5)).total_seconds() == -5


@pytest.mark.parametrize("order", ["key_first", "key_last"])
def test_the_key_may_come_before_or_after_the_certificates(proxies, order):
    proxy_cert, key, user_cert = _blocks(proxies["rfc"])
    data = key + proxy_cert + user_cert if order == "key_first" else proxy_cert + user_cert + key
    info = parse_proxy(data)
    assert info.identity == ALICE_DN
    assert info.chain_length == 2


def test_a_file_with_only_the_proxy_certificate_takes_identity_from_its_issuer(proxies):
    proxy_cert, key, _ = _blocks(proxies["legacy"])
    info = parse_proxy(proxy_cert + key)
    assert info.identity == ALICE_DN
    assert info.chain_length == 1


def test_text_around_the_pem_blocks_is_ignored(proxies):
    info = parse_proxy(b"Bag Attributes\n    friendlyName: x\n" + proxies["rfc"] + b"\n\n")
    assert info.identity == ALICE_DN


def test_pem_keeps_the_whole_file_and_repr_never_shows_the_key(proxies):
    info = parse_proxy(proxies["rfc"])
    assert info.pem == proxies["rfc"]
    assert "PRIVATE" not in repr(info) and "BEGIN" not in repr(info)


def test_as_dict_is_json_with_iso_times_and_seconds_left(proxies, tmp_path):
    path = _write(tmp_path, proxies["rfc"])
    info = load_proxy(path)
    now = datetime.datetime.now(UTC)
    shown = json.loads(json.dumps(info.as_dict(now)))
    assert shown["path"] == str(path)
    assert shown["identity"] == ALICE_DN
    assert shown["type"] == RFC3820_PROXY
    assert shown["time_left"] == int(info.time_left(now).total_seconds())
    assert shown["expired"] is False
    assert datetime.datetime.fromisoformat(shown["not_after"]) == info.not_after
    assert "pem" not in shown and "certificates" not in shown


def test_as_dict_of_an_expired_proxy_shows_zero_left(proxies):
    shown = parse_proxy(proxies["expired"]).as_dict()
    assert shown["time_left"] == 0 and shown["expired"] is True


def test_proxy_info_is_frozen(proxies):
    info = parse_proxy(proxies["rfc"])
    with pytest.raises(AttributeError):
        info.identity = "/CN=someone else"  # type: ignore[misc]
    assert isinstance(info, ProxyInfo)


# --- loading a file ---------------------------------------------------------------------

def test_load_proxy_records_the_path(proxies, tmp_path):
    path = _write(tmp_path, proxies["rfc"])
    assert load_proxy(path).path == path
    assert load_proxy(str(path)).path == path


def test_load_proxy_follows_a_symlink_to_a_proxy(proxies, tmp_path):
    target = _write(tmp_path, proxies["rfc"])
    link = tmp_path / "link"
    link.symlink_to(target)
    assert load_proxy(link).identity == ALICE_DN


def test_expired_proxy_says_when_it_expired_and_how_to_renew(proxies, tmp_path):
    path = _write(tmp_path, proxies["expired"])
    with pytest.raises(ProxyExpiredError) as caught:
        load_proxy(path)
    message = str(caught.value)
    assert str(path) in message and "expired at" in message and "ago" in message
    assert "grid-proxy-init" in message and "voms-proxy-init" in message


def test_a_proxy_with_less_than_the_lifetime_needed_is_refused(proxies, tmp_path):
    path = _write(tmp_path, proxies["short"])
    with pytest.raises(ProxyExpiredError) as caught:
        load_proxy(path, min_lifetime=3600)
    assert "left, but at least 1:00:00 is needed" in str(caught.value)
    assert load_proxy(path, min_lifetime=60).identity == ALICE_DN


def test_lifetime_is_checked_at_the_time_given(proxies, tmp_path):
    path = _write(tmp_path, proxies["rfc"])
    info = load_proxy(path)
    with pytest.raises(ProxyExpiredError):
        load_proxy(path, now=info.not_after + datetime.timedelta(seconds=1))
    with pytest.raises(ProxyExpiredError):
        load_proxy(path, min_lifetime=61, now=info.not_after - datetime.timedelta(seconds=60))


def test_a_proxy_cut_short_by_its_user_certificate_says_so(users, tmp_path):
    short_lived_user = users.ca.issue(ALICE_DN, bits=1024, days=1)
    path = _write(tmp_path, make_proxy(short_lived_user, bits=1024, hours=48))
    with pytest.raises(ProxyExpiredError) as caught:
        load_proxy(path, min_lifetime=2 * 86400)
    assert "cut short by the certificate" in str(caught.value)


# --- each malformed input, its own error -------------------------------------------------

def _malformed(proxies, users, tmp_path):
    """(name, path, expected error class, words the message must contain) for bad inputs."""
    rfc = proxies["rfc"]
    proxy_cert, key, user_cert = _blocks(rfc)
    other_key = _blocks(proxies["legacy"])[1]
    encrypted = users.alice.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"))
    legacy_encrypted = users.alice.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"secret"))
    impostor = users.ca.issue(ALICE_DN, bits=1024).certificate.public_bytes(
        serialization.Encoding.PEM)
    damaged = proxy_cert.replace(proxy_cert[100:140], b"!" * 40)
    cases = [
        ("empty", b"", ProxyFileError, "is empty"),
        ("blank", b"\n  \n", ProxyFileError, "is empty"),
        ("garbage", b"this is not a proxy\n", ProxyFileError, "no '-----BEGIN' line"),
        ("der", users.alice.certificate.public_bytes(serialization.Encoding.DER),
         ProxyFileError, "no '-----BEGIN' line (it looks like DER"),
        ("truncated", rfc[: len(rfc) // 2], ProxyFileError, "is truncated"),
        ("cut_in_the_middle", proxy_cert[:300] + b"\n" + key + user_cert, ProxyFileError,
         "is truncated: the 'CERTIFICATE' block at line 1 has no END line"),
        ("damaged", damaged + key + user_cert, ProxyFileError, "is damaged"),
        ("no_key", proxy_cert + user_cert, ProxyKeyError, "no private key"),
        ("key_only", key, ProxyFileError, "holds no certificate"),
        ("two_keys", proxy_cert + key + other_key + user_cert, ProxyFileError, "2 private keys"),
        ("wrong_key", proxy_cert + other_key + user_cert, ProxyKeyError,
         "does not match the first certificate (/DC=org/DC=example/OU=People/CN=Alice Analyst 1234/"
         "CN="),
        ("user_cert_first", user_cert + proxy_cert + key, ProxyKeyError,
         "it belongs to certificate 2: the proxy certificate must come first"),
        ("encrypted_pkcs8", proxy_cert + encrypted, ProxyKeyError, "is encrypted"),
        ("encrypted_legacy", proxy_cert + legacy_encrypted, ProxyKeyError, "is encrypted"),
        ("out_of_order", proxy_cert + key + users.bob.certificate.public_bytes(
            serialization.Encoding.PEM), ProxyFileError, "out of order"),
        ("forged_chain", proxy_cert + key + impostor, ProxyFileError, "is not signed"),
    ]
    for name, data, error, words in cases:
        yield name, _write(tmp_path, data, name), error, words
    directory = tmp_path / "a-directory"
    directory.mkdir()
    yield "directory", directory, ProxyFileError, "is a directory"
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(loop)
    yield "symlink_loop", loop, ProxyFileError, "symbolic link loop"
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    yield "dangling", dangling, ProxyFileError, "dangling symbolic link"
    yield "missing", tmp_path / "missing", ProxyFileError, "does not exist"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    yield "fifo", fifo, ProxyFileError, "not a regular file"
    huge = tmp_path / "huge"
    with open(huge, "wb") as out:
        out.truncate(proxy_module.MAX_PROXY_SIZE + 10)
    yield "huge", huge, ProxyFileError, "larger than"
    yield "expired", _write(tmp_path, proxies["expired"], "expired"), ProxyExpiredError, "expired"


def test_each_malformed_input_gives_its_own_clear_error(proxies, users, tmp_path):
    seen = []
    for name, path, error, words in _malformed(proxies, users, tmp_path):
        with pytest.raises(error) as caught:
            load_proxy(path)
        message = str(caught.value)
        assert type(caught.value) is error, name
        assert words in message, (name, message)
        assert str(path) in message, (name, message)
        assert "\n" not in message, name
        seen.append((words, message))
    for words, message in seen:
        others = {w for w, _ in seen if w not in words and w in message}
        assert not others, (message, others)


def test_an_unreadable_file_says_permission_denied(proxies, tmp_path):
    path = _write(tmp_path, proxies["rfc"])
    denied = PermissionError(errno.EACCES, "Permission denied")
    with mock.patch.object(proxy_module.os, "open", side_effect=denied):
        with pytest.raises(ProxyFileError) as caught:
            load_proxy(path)
    assert f"{path} cannot be read: permission denied" in str(caught.value)


def test_parse_errors_without_a_path_name_the_data():
    with pytest.raises(ProxyFileError, match="^the proxy data is empty"):
        parse_proxy(b"")


def test_a_world_readable_proxy_is_loaded_with_a_warning(proxies, tmp_path, caplog):
    path = _write(tmp_path, proxies["rfc"])
    path.chmod(0o644)
    assert load_proxy(path).identity == ALICE_DN
    assert "should be 0600" in caplog.text
