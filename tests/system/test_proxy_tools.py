"""The proxy model agrees with the grid tools on proxies the grid tools made.

Proxies come from the real ``grid-proxy-init`` (RFC 3820, legacy, limited, short-lived, 4096
bits, independent, draft, a proxy of a proxy) and ``voms-proxy-fake``; the reference answers
from ``grid-proxy-info`` and ``voms-proxy-info``; DN spelling from ``openssl x509``.
"""

from __future__ import annotations

import datetime
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from pilotid.cli import main
from pilotid.errors import ProxyExpiredError
from pilotid.identity import proxy as p
from pilotid.identity.credential import CredentialRequest
from pilotid.identity.default_proxy import default_proxy_path
from pilotid.identity.dn import slash_dn
from pilotid.identity.proxy import load_proxy
from pilotid.identity.sources import LocalFileSource
from pilotid.queue import QueueSettings
from tests.conftest import ALICE_DN, BOB_DN
from tests.system import node

VOMS_DN = "/DC=org/DC=example/CN=voms.example.org"
TOOLS = ("grid-proxy-init", "grid-proxy-info", "voms-proxy-fake", "voms-proxy-info", "openssl")

# name: (user, grid-proxy-init options, the type it must be)
GRID_PROXY_INIT = {
    "rfc": ("bob", ["-rfc"], p.RFC3820_PROXY),
    "old": ("alice", ["-old"], p.LEGACY_PROXY),
    "limited": ("bob", ["-limited"], p.RFC3820_LIMITED_PROXY),
    "old_limited": ("bob", ["-old", "-limited"], p.LEGACY_LIMITED_PROXY),
    "short": ("alice", ["-valid", "0:05"], p.RFC3820_PROXY),
    "bits4096": ("alice", ["-bits", "4096"], p.RFC3820_PROXY),
    "independent": ("bob", ["-independent"], p.RFC3820_INDEPENDENT_PROXY),
    "draft": ("alice", ["-draft"], p.DRAFT_PROXY),
    "draft_limited": ("alice", ["-draft", "-limited"], p.DRAFT_LIMITED_PROXY),
}
# name: (voms-proxy-fake options, the type it must be, voms-proxy-info's word for it)
VOMS_PROXY_FAKE = {
    "voms_rfc": (["-rfc"], p.RFC3820_PROXY, "RFC compliant proxy"),
    "voms_limited": (["-rfc", "-limited"], p.RFC3820_LIMITED_PROXY, "RFC compliant proxy"),
    "voms_legacy": (["-proxyver", "2"], p.LEGACY_PROXY, "proxy"),
}


class Lab:
    """A directory with the test CA's trust store, user credentials and a VOMS host."""

    def __init__(self, base: Path, users) -> None:
        self.base = base
        users.ca.write_trust_dir(base / "certificates")
        self.creds = {name: getattr(users, name).write(base, name) for name in ("alice", "bob")}
        voms = users.ca.issue(VOMS_DN, bits=1024, server_name="voms.example.org")
        self.voms_cert, self.voms_key = voms.write(base, "voms")
        lsc = base / "vomsdir" / "atlas" / "voms.example.org.lsc"
        lsc.parent.mkdir(parents=True)
        lsc.write_text(f"{VOMS_DN}\n{users.ca.dn}\n")
        (base / ".rnd").touch()
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(base),
                    "X509_CERT_DIR": str(base / "certificates"),
                    "X509_VOMS_DIR": str(base / "vomsdir"), "RANDFILE": str(base / ".rnd")}
        self.proxies = {}

    def run(self, argv, check=True) -> subprocess.CompletedProcess:
        done = subprocess.run(argv, env=self.env, cwd=self.base, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"{argv[0]} failed ({done.returncode}): {done.stderr}")
        return done

    def grid_proxy_init(self, name, user, options) -> Path:
        cert, key = self.creds[user]
        out = self.base / f"{name}.pem"
        bits = [] if "-bits" in options else ["-bits", "1024"]
        self.run(["grid-proxy-init", "-q", "-cert", str(cert), "-key", str(key),
                  "-out", str(out), *bits, *options])
        return out

    def voms_proxy_fake(self, name, options) -> Path:
        cert, key = self.creds["bob"]
        out = self.base / f"{name}.pem"
        self.run(["voms-proxy-fake", "-q", "-cert", str(cert), "-key", str(key),
                  "-hostcert", str(self.voms_cert), "-hostkey", str(self.voms_key),
                  "-voms", "atlas", "-uri", "voms.example.org:15000", "-fqan", "/atlas",
                  "-hours", "6", "-bits", "1024", "-out", str(out), *options])
        out.chmod(0o600)
        return out

    def grid_proxy_info(self, path, *options) -> list:
        return self.run(["grid-proxy-info", "-file", str(path), *options]).stdout.splitlines()

    def voms_proxy_info(self, path, option) -> str:
        return self.run(["voms-proxy-info", "-file", str(path), option]).stdout.strip()


@pytest.fixture(scope="session")
def lab(real_node, users, tmp_path_factory) -> Lab:
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        pytest.skip(f"grid tools missing: {', '.join(missing)} (tests/system/setup-node.sh "
                    "installs globus-proxy-utils and voms-clients)")
    made = Lab(tmp_path_factory.mktemp("grid-lab"), users)
    for name, (user, options, _) in GRID_PROXY_INIT.items():
        made.proxies[name] = made.grid_proxy_init(name, user, options)
    rfc = made.proxies["rfc"]
    made.creds["rfc"] = (rfc, rfc)
    made.proxies["chained"] = made.grid_proxy_init("chained", "rfc", ["-valid", "2:00"])
    for name, (options, _, _) in VOMS_PROXY_FAKE.items():
        made.proxies[name] = made.voms_proxy_fake(name, options)
    return made


def _seconds(info) -> int:
    return int(info.time_left().total_seconds())


@pytest.mark.parametrize("name", sorted(GRID_PROXY_INIT) + ["chained"] + sorted(VOMS_PROXY_FAKE))
def test_subject_issuer_identity_type_strength_and_time_left_agree_with_grid_proxy_info(lab,
                                                                                       name):
    path = lab.proxies[name]
    subject, issuer, identity, kind, strength, timeleft = lab.grid_proxy_info(
        path, "-subject", "-issuer", "-identity", "-type", "-strength", "-timeleft")
    info = load_proxy(path)
    assert (info.subject, info.issuer, info.identity) == (subject, issuer, identity)
    assert info.proxy_type == kind
    assert info.key_bits == int(strength)
    assert abs(_seconds(info) - int(timeleft)) <= 2


@pytest.mark.parametrize("name", sorted(GRID_PROXY_INIT))
def test_grid_proxy_init_made_the_type_asked_for(lab, name):
    user, _, expected = GRID_PROXY_INIT[name]
    info = load_proxy(lab.proxies[name])
    assert info.proxy_type == expected
    user_dn = {"alice": ALICE_DN, "bob": BOB_DN}[user]
    if expected == p.RFC3820_INDEPENDENT_PROXY:  # acts for nobody but itself
        assert info.identity == info.subject != user_dn
    else:
        assert info.identity == user_dn
    assert info.is_limited == (expected in p.LIMITED_TYPES)


def test_a_proxy_of_a_proxy_has_the_users_identity_and_a_chain_of_three(lab):
    info = load_proxy(lab.proxies["chained"])
    assert info.identity == BOB_DN
    assert info.chain_length == 3
    assert info.issuer == load_proxy(lab.proxies["rfc"]).subject


def test_a_4096_bit_proxy_reports_4096_bits(lab):
    assert load_proxy(lab.proxies["bits4096"]).key_bits == 4096
    assert lab.grid_proxy_info(lab.proxies["bits4096"], "-strength") == ["4096"]


def test_a_five_minute_proxy_is_refused_for_a_ten_minute_job_as_grid_proxy_info_does(lab):
    path = lab.proxies["short"]
    assert 0 < _seconds(load_proxy(path)) <= 300
    with pytest.raises(ProxyExpiredError, match="left, but at least 0:10:00 is needed"):
        load_proxy(path, min_lifetime=600)
    assert lab.run(["grid-proxy-info", "-file", str(path), "-exists", "-valid", "0:10"],
                   check=False).returncode != 0
    assert lab.run(["grid-proxy-info", "-file", str(path), "-exists", "-valid", "0:01"],
                   check=False).returncode == 0


@pytest.mark.parametrize("name", sorted(VOMS_PROXY_FAKE))
def test_voms_proxies_agree_with_voms_proxy_info(lab, name):
    _, expected, voms_word = VOMS_PROXY_FAKE[name]
    path = lab.proxies[name]
    info = load_proxy(path)
    assert info.identity == lab.voms_proxy_info(path, "-identity") == BOB_DN
    assert info.subject == lab.voms_proxy_info(path, "-subject")
    assert lab.voms_proxy_info(path, "-type") == voms_word
    assert info.proxy_type == expected
    assert abs(_seconds(info) - int(lab.voms_proxy_info(path, "-timeleft"))) <= 2


@pytest.mark.parametrize("name", ["rfc", "old_limited", "voms_rfc"])
def test_pilotid_proxy_info_prints_what_grid_proxy_info_prints(lab, name, capsys):
    path = str(lab.proxies[name])
    theirs = lab.grid_proxy_info(path, "-all")
    assert main(["proxy-info", path]) == 0
    # what grid-proxy-info prints comes first; VOMS attributes, if any, follow it
    ours = capsys.readouterr().out.splitlines()[:len(theirs)]
    assert ours[:-1] == theirs[:-1]
    assert ours[-1][:11] == theirs[-1][:11] == "timeleft : "
    ours_h, ours_m, ours_s = map(int, ours[-1][11:].split()[0].split(":"))
    theirs_h, theirs_m, theirs_s = map(int, theirs[-1][11:].split()[0].split(":"))
    assert abs((ours_h * 3600 + ours_m * 60 + ours_s)
               - (theirs_h * 3600 + theirs_m * 60 + theirs_s)) <= 2


def test_the_local_file_copy_is_accepted_by_grid_proxy_info(lab, tmp_path):
    source = LocalFileSource(QueueSettings(name="ANALY_SYS",
                                           options={"proxy_file": lab.proxies["rfc"]}))
    credential = source.fetch(CredentialRequest(directory=tmp_path, lifetime=3600,
                                                owner_dn=BOB_DN))
    assert stat.S_IMODE(os.stat(credential.path).st_mode) == 0o600
    # grid-proxy-info refuses a proxy file more open than 0600: this also checks the mode
    assert lab.grid_proxy_info(credential.path, "-identity") == [BOB_DN]
    assert credential.path.read_bytes() == lab.proxies["rfc"].read_bytes()


# --- DN spelling against openssl ------------------------------------------------------------

def _odd_names():
    cn = NameOID.COMMON_NAME

    def attr(value, oid=cn, **kw):
        return x509.NameAttribute(oid, value, **kw)

    bmp = x509.name._ASN1Type.BMPString
    return {
        "quotes": x509.Name([attr("org", NameOID.DOMAIN_COMPONENT),
                             attr("Bob O'Builder (Test) \"x\"")]),
        "slash_plus": x509.Name([attr("host/pilot.example.org"), attr("a+b")]),
        "punctuation": x509.Name([attr('a=b, c; <x> #h \\bs')]),
        "utf8": x509.Name([attr("José Müller 中")]),
        "control": x509.Name([attr("tab\there")]),
        "bmp": x509.Name([attr("café", _type=bmp)]),
        "multi": x509.Name([x509.RelativeDistinguishedName(
            [attr("Multi"), attr("mu42", NameOID.USER_ID)])]),
        "short_names": x509.Name([attr("a@b.org", NameOID.EMAIL_ADDRESS),
                                  attr("12", NameOID.SERIAL_NUMBER),
                                  attr("odd", x509.ObjectIdentifier("1.2.3.4.5"))]),
    }


@pytest.mark.parametrize("kind", sorted(_odd_names()))
def test_slash_dn_agrees_with_openssl(lab, kind, tmp_path):
    name = _odd_names()[kind]
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    path = tmp_path / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    shown = lab.run(["openssl", "x509", "-in", str(path), "-noout", "-subject",
                     "-nameopt", "compat"]).stdout
    assert slash_dn(cert.subject) == shown.strip()[len("subject="):]


def test_globus_names_the_default_proxy_by_the_effective_uid_as_pilotid_does(real_node):
    """grid-proxy-info run with real uid root and effective uid the pilot's looks for the
    effective uid's file, the one ``default_proxy_path()`` names with that euid."""
    pilot = node.account(node.PILOT)
    env = {k: v for k, v in os.environ.items() if k != "X509_USER_PROXY"}
    found = subprocess.run(["grid-proxy-info", "-path"], env=env, capture_output=True,
                           text=True, check=False, preexec_fn=lambda: os.seteuid(pilot.uid))
    said = found.stdout + found.stderr
    assert str(default_proxy_path(pilot.uid)) in said
    assert str(default_proxy_path(0)) not in said
