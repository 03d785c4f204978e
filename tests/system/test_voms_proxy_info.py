"""``pilotid proxy-info --json`` and ``voms_attributes`` agree with ``voms-proxy-info -all``.

On proxies of every kind made by ``voms-proxy-fake`` (RFC and legacy, full and limited,
one or two VOs, several FQANs, AC or proxy near expiry, no VOMS at all) and on proxies
pilotid retrieved from the session's real myproxy-server (plain, and delegated from a
stored VOMS proxy).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pilotid.cli import main
from pilotid.identity.credfile import write_private
from pilotid.identity.myproxy import ClientCredential, MyProxyClient
from pilotid.identity.testca import Identity, make_proxy
from pilotid.identity.voms import voms_attributes
from tests.conftest import ALICE_DN, PILOT_DN
from tests.system import node
from tests.system.voms_lab import VOMS_DN, seconds

SLACK = 5  # seconds between voms-proxy-info's clock and ours
# pilotid's proxy types (grid-proxy-info's words) as voms-proxy-info 2.1 names them; it does
# not tell an RFC limited proxy from a full one
VOMS_PROXY_INFO_TYPE = {"RFC 3820 compliant impersonation proxy": "RFC compliant proxy",
                        "RFC 3820 compliant limited proxy": "RFC compliant proxy",
                        "full legacy globus proxy": "proxy",
                        "limited legacy globus proxy": "limited proxy"}


@pytest.fixture(scope="module")
def lab(voms_lab):
    """The session's VOMS lab (trust directory, vomsdir, fake VOMS server)."""
    return voms_lab


def proxy_info_json(path):
    """What ``pilotid proxy-info --json`` prints for ``path``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["proxy-info", "--json", str(path)]) == 0
    return json.loads(out.getvalue())


def assert_agrees(lab, path):
    """Our reading of ``path`` and voms-proxy-info's, VO by VO; returns ours.

    Both the library and ``pilotid proxy-info --json`` are compared with the tool.
    """
    ours = voms_attributes(x509.load_pem_x509_certificates(path.read_bytes()))
    theirs = lab.info(path)
    assert theirs.returncode == 0, theirs.stderr
    shown = proxy_info_json(path)
    # voms-proxy-info names the proxy's issuer (for a proxy of a proxy, a proxy subject);
    # pilotid names the end entity, as grid-proxy-info and gLExec do
    assert theirs.proxy["identity"].startswith(shown["identity"])
    assert (shown["subject"], shown["issuer"]) == (theirs.proxy["subject"],
                                                   theirs.proxy["issuer"])
    assert VOMS_PROXY_INFO_TYPE[shown["type"]] == theirs.proxy["type"]
    assert f"{shown['key_bits']} bits" == theirs.proxy["strength"]
    assert abs(shown["time_left"] - seconds(theirs.proxy["timeleft"])) <= SLACK
    assert [(v["vo"], v["fqans"]) for v in shown["voms"]] == \
        [(vo["VO"], vo["attribute"]) for vo in theirs.vos]
    assert [a.vo for a in ours] == [vo["VO"] for vo in theirs.vos]
    for attributes, vo in zip(ours, theirs.vos):
        assert list(attributes.fqans) == vo["attribute"]
        assert attributes.issuer == vo["issuer"]
        assert (attributes.uri or "") == vo["uri"]
        assert abs(attributes.time_left().total_seconds() - seconds(vo["timeleft"])) <= SLACK
    return ours


def test_rfc_proxy_with_several_fqans(lab, users):
    fqans = ["/atlas/Role=production", "/atlas", "/atlas/usatlas/Role=pilot"]
    (found,) = assert_agrees(lab, lab.fake(users.alice, "alice", "atlas", fqans))
    assert found.fqans == tuple(fqans) and found.issuer == VOMS_DN


def test_legacy_proxy(lab, users):
    path = lab.fake(users.alice, "alice", "atlas", ["/atlas/Role=pilot"],
                    options=["-proxyver", "2"])
    assert lab.info(path).proxy["type"] == "proxy"
    assert assert_agrees(lab, path)[0].fqans == ("/atlas/Role=pilot",)


def test_limited_rfc_proxy(lab, users):
    path = lab.fake(users.alice, "alice", "atlas", ["/atlas"], options=["-rfc", "-limited"])
    assert_agrees(lab, path)


def test_limited_legacy_proxy(lab, users):
    path = lab.fake(users.alice, "alice", "atlas", ["/atlas"],
                    options=["-proxyver", "2", "-limited"])
    assert lab.info(path).proxy["type"] == "limited proxy"
    assert_agrees(lab, path)


def test_fqans_spelled_as_a_real_voms_server_writes_them(lab, users):
    fqans = ["/atlas/Role=pilot/Capability=NULL", "/atlas/Role=NULL/Capability=NULL"]
    (found,) = assert_agrees(lab, lab.fake(users.alice, "alice", "atlas", fqans))
    assert found.primary_fqan == "/atlas/Role=pilot/Capability=NULL"


def test_ac_without_server_uri(lab, users):
    (found,) = assert_agrees(lab, lab.fake(users.alice, "alice", "atlas", ["/atlas"], uri=None))
    assert found.uri is None


def test_ac_near_expiry(lab, users):
    path = lab.fake(users.alice, "alice", "atlas", ["/atlas/Role=pilot"], hours=24,
                    options=["-rfc", "-pastac", "23:57"])
    (found,) = assert_agrees(lab, path)
    assert 0 < found.time_left().total_seconds() <= 180


def test_proxy_near_expiry(lab, users):
    path = lab.fake(users.alice, "alice", "atlas", ["/atlas/Role=pilot", "/atlas"], hours=1,
                    options=["-rfc", "-pastproxy", "0:58", "-pastac", "0:58"])
    assert 0 < proxy_info_json(path)["time_left"] <= 120
    (found,) = assert_agrees(lab, path)
    assert 0 < found.time_left().total_seconds() <= 120


def test_other_vo_for_a_user_with_quotes_and_parentheses_in_the_dn(lab, users):
    path = lab.fake(users.bob, "bob", "cms", ["/cms/Role=pilot", "/cms"],
                    uri="voms.example.org:15001")
    (found,) = assert_agrees(lab, path)
    assert (found.vo, found.uri) == ("cms", "voms.example.org:15001")


def test_proxy_with_two_vos(lab, users):
    atlas = lab.fake(users.alice, "alice", "atlas", ["/atlas/Role=production", "/atlas"])
    cms = lab.fake(users.alice, "alice", "cms", ["/cms/Role=NULL/Capability=NULL"],
                   uri="voms.example.org:15001", hours=6)
    found = assert_agrees(lab, lab.combine(users.alice, [atlas, cms], "alice-two-vos"))
    assert [a.vo for a in found] == ["atlas", "cms"]


def test_plain_proxy_delegated_from_a_voms_proxy_shows_the_parents_attributes(lab, users):
    parent = lab.fake(users.alice, "alice", "atlas", ["/atlas/Role=pilot"])
    data = parent.read_bytes()
    certificates = x509.load_pem_x509_certificates(data)
    issuer = Identity("voms proxy", certificates[0],
                      serialization.load_pem_private_key(data, password=None))
    child = write_private(lab.base / "delegated.proxy",
                          make_proxy(issuer, chain=certificates[1:], hours=2))
    (found,) = assert_agrees(lab, child)
    assert found.fqans == ("/atlas/Role=pilot",)


def test_proxy_without_voms_has_no_attributes(lab, users):
    plain = write_private(lab.base / "plain.proxy", make_proxy(users.alice, hours=2))
    assert assert_agrees(lab, plain) == ()


@pytest.fixture(scope="module")
def retrieved(myproxy, lab):
    """Alice's proxies as the pilot retrieved them with pilotid from the real server: one
    delegated by ``myproxy-init``, one from a VOMS proxy stored with ``myproxy-store``."""
    myproxy.store("alice", "vpi-plain", PILOT_DN)
    voms = myproxy.voms_proxy("alice", "/atlas/Role=production", "/atlas/usatlas", "/atlas")
    myproxy.run(["myproxy-store", *myproxy.server_args, "-c", str(voms), "-y", str(voms),
                 "-l", "alice", "-k", "vpi-voms", "-x", "-Z", PILOT_DN], proxy=voms)
    client = MyProxyClient("localhost", myproxy.port, environ={}, retries=0,
                           credential=ClientCredential.load(myproxy.proxy("pilot")),
                           ca_dir=myproxy.cert_dir)
    base = node.make_shared_dir("pilotid-vpi-")
    yield {name: client.get("alice", f"vpi-{name}", lifetime=3 * 3600).write(base / name)
           for name in ("plain", "voms")}
    shutil.rmtree(base, ignore_errors=True)


def test_plain_proxy_retrieved_from_myproxy(lab, retrieved):
    assert assert_agrees(lab, retrieved["plain"]) == ()
    shown = proxy_info_json(retrieved["plain"])
    assert shown["identity"] == ALICE_DN and shown["is_proxy"]
    assert 3 * 3600 - SLACK <= shown["time_left"] <= 3 * 3600


def test_voms_proxy_retrieved_from_myproxy_shows_the_stored_attributes(lab, retrieved):
    (found,) = assert_agrees(lab, retrieved["voms"])
    assert found.fqans == ("/atlas/Role=production", "/atlas/usatlas", "/atlas")
    assert proxy_info_json(retrieved["voms"])["identity"] == ALICE_DN
