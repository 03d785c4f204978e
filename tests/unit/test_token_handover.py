"""A token-only job through the no-op switch: the payload gets BEARER_TOKEN_FILE naming its
own 0600 copy of the user's token, never a BEARER_TOKEN value nor the pilot's token."""

from __future__ import annotations

import json

from pilotid.identity.testissuer import TestIssuer
from pilotid.identity.tokens.sources import BearerTokenSource
from pilotid.launcher import PayloadLauncher
from pilotid.payloads.job import JobSpec
from pilotid.payloads.wrapper import credential_exports
from pilotid.queue import QueueSettings
from pilotid.queue_strategies import Strategies
from pilotid.testing import FakePayload, RecordingSwitcher
from pilotid.values import ProxyHandover

ISSUER = TestIssuer("https://atlas-auth.example.org/", key_id="k1")
JOB = JobSpec(panda_id=4343, transformation="fake-00-00-01", prod_user_id="alice")

SCRIPT = ('stat -c %a "$BEARER_TOKEN_FILE" > mode.txt; cat "$BEARER_TOKEN_FILE" > seen.txt; '
          'env > env.txt')


def _launcher(tmp_path, raw):
    jwks = ISSUER.write_jwks(tmp_path / "atlas.jwks")
    tokens = QueueSettings.from_mapping("ANALY_TOKENS", {
        "credential_source": "bearer", "token_issuers": {ISSUER.url: str(jwks)}})
    queue = QueueSettings("ANALY_TOKENS", jobs_without_dn="token_subject")
    return PayloadLauncher(queue, Strategies(
        source=BearerTokenSource(tokens, environ={"BEARER_TOKEN": raw}),
        switcher=RecordingSwitcher(queue),
        payloads=(FakePayload(["/bin/sh", "-c", SCRIPT]),)))


def test_the_payload_reads_its_token_from_its_own_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("BEARER_TOKEN", "the-pilots-own-token")
    monkeypatch.setenv("BEARER_TOKEN_FILE", "/pilot/own/token")
    workdir = tmp_path / "work"
    workdir.mkdir()
    raw = ISSUER.token("alice", groups=["/atlas"])
    result = _launcher(tmp_path, raw).run(JOB, workdir)
    assert result.outcome == "succeeded", result.error
    assert (workdir / "seen.txt").read_text().strip() == raw
    assert (workdir / "mode.txt").read_text().strip() == "600"
    env = (workdir / "env.txt").read_text()
    assert "the-pilots-own-token" not in env and "/pilot/own/token" not in env
    assert raw not in env
    assert "X509_USER_PROXY=" not in env
    assert [line for line in env.splitlines() if line.startswith("BEARER_TOKEN")] == [
        line for line in env.splitlines() if line.startswith("BEARER_TOKEN_FILE=")]


def test_the_token_copy_is_removed_and_the_record_names_the_token(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    _launcher(tmp_path, ISSUER.token("alice", groups=["/atlas", "/atlas/prod"])).run(
        JOB, workdir)
    assert sorted(str(p) for p in workdir.rglob("bearer-token-*")) == []
    record = json.loads((workdir / "accounting.jsonl").read_text())
    assert record["token"] == {"issuer": ISSUER.url, "subject": "alice",
                               "groups": ["/atlas", "/atlas/prod"]}
    assert record["user_dn"] == f"alice@{ISSUER.url}"


def test_the_wrapper_exports_only_file_names(tmp_path):
    both = ProxyHandover(tmp_path / "h" / "x509up", from_stdin=True,
                         payload_token=tmp_path / "h" / "bt")
    token_only = ProxyHandover(tmp_path / "h" / "x509up", from_stdin=True,
                               payload_token=tmp_path / "h" / "bt", carries_proxy=False)
    # the template's own path variables (in world mode they name the target's directory)
    assert credential_exports(both) == ('X509_USER_PROXY="$_pilotid_proxy" '
                                        'BEARER_TOKEN_FILE="$_pilotid_token"')
    assert credential_exports(token_only) == 'BEARER_TOKEN_FILE="$_pilotid_token"'


class _NewerOnRefetch(dict):
    """A pilot environment whose BEARER_TOKEN is ``first`` at the job's fetch and ``later``
    at every fetch after it (the source got a newer token while the payload runs)."""

    def __init__(self, first: str, later: str) -> None:
        super().__init__(BEARER_TOKEN=first)
        self.later = later
        self.fetches = 0

    def get(self, key, default=None):
        if key == "BEARER_TOKEN":
            self.fetches += 1
            return self[key] if self.fetches == 1 else self.later
        return super().get(key, default)


WAIT_FOR_NEW = ('first=$(cat "$BEARER_TOKEN_FILE"); now=$first; i=0; '
                'while [ "$now" = "$first" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); '
                'now=$(cat "$BEARER_TOKEN_FILE"); done; echo "$first" > first.txt; '
                'echo "$now" > now.txt; stat -c %a "$BEARER_TOKEN_FILE" > mode.txt')


def test_a_newer_token_is_renamed_over_the_running_payloads_copy(tmp_path):
    """The copy has less than token_refresh_threshold (600 s) left: the source's newer
    token replaces it while the payload runs, and the payload reads it at the same path."""
    old, new = ISSUER.token("alice", lifetime=400), ISSUER.token("alice", lifetime=3600)
    jwks = ISSUER.write_jwks(tmp_path / "atlas.jwks")
    tokens = QueueSettings.from_mapping("ANALY_TOKENS", {
        "credential_source": "bearer", "token_issuers": {ISSUER.url: str(jwks)}})
    queue = QueueSettings("ANALY_TOKENS", jobs_without_dn="token_subject",
                          proxy_refresh_interval=1)
    launcher = PayloadLauncher(queue, Strategies(
        source=BearerTokenSource(tokens, environ=_NewerOnRefetch(old, new)),
        switcher=RecordingSwitcher(queue),
        payloads=(FakePayload(["/bin/sh", "-c", WAIT_FOR_NEW]),)))
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = launcher.run(JOB, workdir)
    assert result.outcome == "succeeded", result.error
    assert (workdir / "first.txt").read_text().strip() == old
    assert (workdir / "now.txt").read_text().strip() == new
    assert (workdir / "mode.txt").read_text().strip() == "600"
    assert sorted(p.name for p in workdir.rglob("bearer-token-*")) == []
