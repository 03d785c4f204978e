"""``pilotid probe``: the switch's own checks come from ``node_checks``, with the credential."""

from __future__ import annotations

from types import SimpleNamespace

from pilotid.errors import CredentialRefusedError
from pilotid.identity import scheduling
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential
from pilotid.identity.credfile import write_private
from pilotid.identity.proxy import parse_proxy
from pilotid.payloads.job import JobSpec
from pilotid.probe import FAIL, OK, WARN, Check, probe_node
from pilotid.queue import QueueSettings
from pilotid.strategies.isolation import NoIsolation
from pilotid.testing import RecordingSwitcher, StaticCredentialSource, TestCA, make_proxy

DN = "/DC=org/DC=example/OU=People/CN=Probe Test"


class CheckingSwitcher(RecordingSwitcher):
    def node_checks(self, credential):
        super().node_checks(credential)
        return [Check("my switch", OK, "ready")]


def launcher(source, switcher, **fields):
    return SimpleNamespace(settings=QueueSettings("ANALY_PROBE", **fields), source=source,
                           switcher=switcher, isolation=NoIsolation())


def proxy_credential(tmp_path, hours):
    pem = make_proxy(TestCA(bits=1024).issue(DN), hours=hours, bits=1024)
    path = write_private(tmp_path / f"x509up_{hours}", pem)
    return Credential(path=path, proxy=parse_proxy(pem), source="static")


def test_switch_checks_follow_the_test_switch_and_get_the_credential(tmp_path):
    credential = proxy_credential(tmp_path, 12)
    switcher = CheckingSwitcher()
    checks = probe_node(launcher(StaticCredentialSource(credential), switcher), tmp_path, {})
    names = [c.name for c in checks]
    assert names.index("my switch") == names.index("test switch") + 1
    ((fetched,),) = switcher.called("node_checks")
    assert fetched.identity == credential.identity and fetched.path != credential.path


def test_switch_checks_run_without_a_credential(tmp_path):
    switcher = CheckingSwitcher()
    source = StaticCredentialSource(error=CredentialRefusedError("no proxy"))
    checks = probe_node(launcher(source, switcher), tmp_path, {})
    assert "my switch" in [c.name for c in checks]
    assert switcher.called("node_checks") == [(None,)]


def test_credential_shorter_than_a_launch_needs_is_a_warning(tmp_path):
    credential = proxy_credential(tmp_path, 2)
    checks = probe_node(launcher(StaticCredentialSource(credential), RecordingSwitcher(),
                                 timeout=4 * 3600), tmp_path, {})
    (found,) = [c for c in checks if c.name == "credential"]
    assert found.status == WARN and "needs 3h00m" in found.detail


def test_probe_asks_the_source_for_the_proxy_of_the_user_dn_given(tmp_path):
    source = StaticCredentialSource(proxy_credential(tmp_path, 12))
    probe_node(launcher(source, CheckingSwitcher()), tmp_path, {}, user_dn=DN)
    assert [r.owner_dn for r in source.requests] == [DN]


def test_probe_asks_the_source_for_the_proxy_of_the_jobs_owner(tmp_path):
    source = StaticCredentialSource(proxy_credential(tmp_path, 12))
    job = JobSpec.from_description({"PandaID": 1, "transformation": "runAthena-00-00-11",
                                    "prodUserID": DN, "credname": "analysis",
                                    "myproxy": "myproxy.example.org"})
    probe_node(launcher(source, CheckingSwitcher()), tmp_path, {}, job=job)
    request = source.requests[0]
    assert (request.owner_dn, request.credname, request.server) == (
        DN, "analysis", "myproxy.example.org")


def test_egg_cache_base_is_not_judged_by_the_pilots_rights_when_the_switch_failed(tmp_path):
    source = StaticCredentialSource(error=CredentialRefusedError("no proxy"))
    checks = probe_node(launcher(source, CheckingSwitcher()), tmp_path, {})
    egg = [c for c in checks if c.name == "egg cache base"]
    assert [c.status for c in egg] == [WARN]
    assert "not checked" in egg[0].detail


def sandbox_check(tmp_path, monkeypatch, supported, sandbox):
    monkeypatch.setattr("pilotid.probe.acl_supported", lambda path: supported)
    (workdir := tmp_path / "work").mkdir()
    source = StaticCredentialSource(error=CredentialRefusedError("no proxy"))
    checks = probe_node(launcher(source, RecordingSwitcher(), sandbox=sandbox), workdir, {})
    (found,) = [c for c in checks if c.name == "ACL support"]
    return found


def test_probe_fails_an_acl_queue_whose_work_root_has_no_acls(tmp_path, monkeypatch):
    found = sandbox_check(tmp_path, monkeypatch, False, "acl")
    assert (found.status, found.error_code) == (FAIL, 61)
    assert "acl-or-world" in found.detail


def test_probe_says_world_mode_where_the_queue_accepts_it_without_acls(tmp_path, monkeypatch):
    found = sandbox_check(tmp_path, monkeypatch, False, "acl-or-world")
    assert found.status == WARN and "world mode" in found.detail


def test_probe_says_acl_mode_where_the_work_root_has_acls(tmp_path, monkeypatch):
    found = sandbox_check(tmp_path, monkeypatch, True, "acl-or-world")
    assert found.status == OK and "acl mode" in found.detail


def scheduler_lines(tmp_path, monkeypatch, source=None, **rules):
    """The probe's ``at`` and ``cron`` lines on a node where only ``at`` is installed."""
    etc, root = tmp_path / "etc", tmp_path / "root"
    etc.mkdir()
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/at").touch()
    for name, text in rules.items():
        (etc / name).write_text(text)
    monkeypatch.setattr(scheduling, "ETC", etc)
    monkeypatch.setattr(scheduling, "ROOT", root)
    source = source or StaticCredentialSource(proxy_credential(tmp_path, 12))
    checks = probe_node(launcher(source, RecordingSwitcher()), tmp_path, {})
    return {c.name: c for c in checks if c.name in ("at", "cron")}


def test_probe_warns_where_the_payloads_account_may_queue_work_with_at(tmp_path, monkeypatch):
    lines = scheduler_lines(tmp_path, monkeypatch, **{"at.deny": ""})
    name = Account.current().name
    assert lines["at"].status == WARN
    assert f"{name} may queue commands with at" in lines["at"].detail
    assert "at.deny does not name" in lines["at"].detail and "no daemon" in lines["at"].detail
    assert (lines["cron"].status, lines["cron"].detail) == (OK, "cron is not installed")


def test_probe_says_ok_where_at_is_denied_to_the_payloads_account(tmp_path, monkeypatch):
    lines = scheduler_lines(tmp_path, monkeypatch, **{"at.deny": f"{Account.current().name}\n"})
    assert lines["at"].status == OK and "may not use at" in lines["at"].detail


def test_probe_does_not_judge_at_or_cron_without_the_payloads_account(tmp_path, monkeypatch):
    source = StaticCredentialSource(error=CredentialRefusedError("no proxy"))
    assert scheduler_lines(tmp_path, monkeypatch, source) == {}


class NobodySwitcher(RecordingSwitcher):
    """Maps every proxy to an account that is neither the pilot nor in its groups."""

    def probe(self, credential):
        super().probe(credential)
        return Account("nobody", 65534, 65534)


def work_root_check(area, closed_mode):
    """The probe's work-root line for a work root under a directory of ``closed_mode``."""
    (above := area / "above").mkdir()
    above.chmod(closed_mode)
    (work := above / "root" / "work").mkdir(parents=True)
    source = StaticCredentialSource(proxy_credential(area, 12))
    checks = probe_node(launcher(source, NobodySwitcher(), work_root=above / "root"), work,
                        {})
    (found,) = [c for c in checks if c.name == "work root"]
    return found


def test_probe_fails_a_work_root_the_payloads_account_cannot_reach(area):
    found = work_root_check(area, 0o700)
    assert (found.status, found.error_code) == (FAIL, 66)
    assert "chmod o+x" in found.detail and "nobody" in found.detail


def test_probe_says_ok_where_the_payloads_account_reaches_the_work_root(area):
    found = work_root_check(area, 0o711)
    assert found.status == OK and "nobody" in found.detail


def test_probe_does_not_judge_the_work_root_without_the_payloads_account(tmp_path):
    source = StaticCredentialSource(error=CredentialRefusedError("no proxy"))
    checks = probe_node(launcher(source, RecordingSwitcher()), tmp_path, {})
    (found,) = [c for c in checks if c.name == "work root"]
    assert found.status == WARN and "not checked" in found.detail
