"""Real PanDA job records (tests/data/panda-jobs/, each with a ``.source.md`` saying where it
came from): parsed, given the right adapter and outputs, checked against the owner's
identity, and run end to end on a no-op queue by a recording transformation whose argv must
be, word for word, what bash makes of the record's jobPars."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import List

import pytest

from pilotid.factory import build_launcher, build_strategies
from pilotid.identity.credfile import write_private
from pilotid.identity.dn import is_dn, without_proxy_cns
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.payloads.job import JobSpec, load_job
from pilotid.payloads.transformation import PILOT_DIRECTIVE, transformation_basename
from pilotid.queue import QueueSettings

RECORDS = Path(__file__).resolve().parents[1] / "data" / "panda-jobs"
ALL_ADAPTERS = ["buildJob", "runAthena", "buildGen", "runGen", "production"]
#: Each record and the adapter that must run it: a new record is added here once checked.
ADAPTER = {
    "act-atlasg4-managed-email.urlencoded": "production",
    "act-atlasg4-prodtest-robotdn.urlencoded": "production",
    "act-digimreco-managed-31inputs.urlencoded": "production",
    "act-runathena-iroot-dnproxy.urlencoded": "runAthena",
    "act-rungen-16inputs-2outputs.urlencoded": "runGen",
    "doma-rungen-token-username.json": "runGen",
    "funcx-rungen-dn-rfc3820.json": "runGen",
    "harvester-arc-simtf-managed-nickname.json": "production",
    "harvester-example-atlasg4-test-ukdn.json": "production",
    "pilot1log-rungen-libonly-dnproxy.urlencoded": "runGen",
    "pilot3-fake-production-recotf.json": "production",
    "pilot3-fake-user-runathena-iroot.json": "runAthena",
    "yoda-simtf-eventservice-nickname.json": "production",
}
#: The production transformations the records name, installed as the site would.
PRODUCTION = ("AtlasG4_trf.py", "DigiMReco_trf.py", "Reco_tf.py", "Sim_tf.py")
RECORDER = """#!/usr/bin/env python3
import json, os, sys
with open("recorded-argv.json", "w", encoding="utf-8", errors="surrogateescape") as out:
    json.dump({"name": os.path.basename(sys.argv[0]), "argv": sys.argv[1:]}, out)
"""
SITE_DN = "/DC=org/DC=example/OU=Services/CN=production robot"


def records() -> List[str]:
    return sorted(p.name for p in RECORDS.iterdir() if not p.name.endswith(".md"))


def load(name: str) -> JobSpec:
    return load_job(RECORDS / name)


def bash_words(job: JobSpec, cwd: Path) -> List[str]:
    """What bash makes of ``./trf <jobPars>`` with the job's variables and nothing else,
    less the pilot's own directive, which the real pilot drops before running it."""
    env = {"PANDAID": str(job.panda_id), "PATH": "/usr/bin:/bin"}
    if job.sw_release:
        env["ATLAS_RELEASE"] = job.sw_release
    script = 'words() { for w in "$@"; do printf "%s\\0" "$w"; done; }; words ' + job.job_pars
    done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True,
                          timeout=30, check=True)
    words = [w.decode("utf-8", "surrogateescape") for w in done.stdout.split(b"\0")[:-1]]
    return [w for w in words if not w.startswith(PILOT_DIRECTIVE)]


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA(bits=1024)


@pytest.fixture(scope="module")
def transformations(tmp_path_factory) -> Path:
    """A site's transformation directory where every transformation is the recorder."""
    directory = tmp_path_factory.mktemp("trf")
    for name in [*ALL_ADAPTERS[:4], *PRODUCTION]:
        (directory / name).write_text(RECORDER)
        (directory / name).chmod(0o755)
    return directory


def queue(tmp_path: Path, proxy: Path, transformations: Path, **fields) -> QueueSettings:
    return QueueSettings.from_mapping("ANALY_RECORDS", {
        "switcher": "noop", "credential_source": "file", "proxy_file": str(proxy),
        "payloads": ALL_ADAPTERS, "transformation_dirs": [str(transformations)],
        "sandbox": "acl", **fields})


def proxy_of(ca: TestCA, dn: str, path: Path) -> Path:
    return write_private(path, make_proxy(ca.issue(dn, bits=1024), bits=1024))


def owner_of(job: JobSpec) -> str:
    """The user's own DN in the record's prodUserID: without its proxy CNs."""
    return without_proxy_cns(job.prod_user_id or "")[-1]


def test_every_record_says_where_it_came_from_and_is_in_the_table():
    assert len(records()) >= 11
    for name in records():
        source = RECORDS / (name.rsplit(".", 1)[0] + ".source.md")
        assert source.is_file(), f"{name} has no {source.name}"
    assert set(records()) == set(ADAPTER), "check each new record, then add it to ADAPTER"


@pytest.mark.parametrize("name", records())
def test_record_gets_its_adapter_and_expects_outfiles_less_the_log(name, tmp_path,
                                                                   transformations):
    job = load(name)
    settings = queue(tmp_path, tmp_path / "unused", transformations)
    adapter = build_strategies(settings).payload_for(job)
    assert adapter.name == ADAPTER[name]
    assert set(adapter.outputs(job)) == {f for f in job.out_files if f != job.log_file}


@pytest.mark.parametrize("name", records())
def test_record_runs_end_to_end_with_the_argv_bash_would_give(name, tmp_path, ca,
                                                              transformations):
    job = load(name)
    if is_dn(job.prod_user_id or ""):
        proxy, fields = proxy_of(ca, owner_of(job), tmp_path / "x509up_user"), {}
    else:
        proxy = proxy_of(ca, SITE_DN, tmp_path / "x509up_site")
        fields = {"jobs_without_dn": "queue_proxy"}
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = build_launcher(queue(tmp_path, proxy, transformations, **fields)).run(job, workdir)
    assert (result.outcome, result.error) == ("succeeded", None)
    recorded = json.loads((workdir / "recorded-argv.json").read_text(errors="surrogateescape"))
    stem = transformation_basename(job.transformation)
    assert recorded["name"] in (stem, stem.split("-")[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert recorded["argv"] == bash_words(job, empty)


NOT_DN = [n for n in records() if not is_dn(load(n).prod_user_id or "")]
DN = [n for n in records() if n not in NOT_DN]


def test_records_cover_every_form_of_the_owners_identity():
    ids = [load(n).prod_user_id or "" for n in records()]
    assert any(i.endswith("/CN=proxy") for i in ids)
    assert any(is_dn(i) and i.rsplit("/CN=", 1)[-1].isdigit() for i in ids)
    assert any("@" in i for i in ids) and any(i in ("", "None", "no_one") for i in ids)
    assert any(i and not is_dn(i) and "@" not in i and i not in ("None", "no_one")
               for i in ids)


@pytest.mark.parametrize("name", NOT_DN)
def test_a_record_naming_no_dn_is_refused_by_default(name, tmp_path, ca, transformations):
    proxy = proxy_of(ca, SITE_DN, tmp_path / "x509up_site")
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = build_launcher(queue(tmp_path, proxy, transformations)).run(load(name), workdir)
    assert (result.outcome, result.error_code) == ("credential_failed", 30)
    assert "jobs_without_dn" in result.error
    assert not (workdir / "recorded-argv.json").exists()


@pytest.mark.parametrize("name", DN)
def test_a_record_never_runs_with_someone_elses_proxy(name, tmp_path, ca, transformations):
    proxy = proxy_of(ca, "/DC=org/DC=example/CN=Someone Else", tmp_path / "x509up_other")
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = build_launcher(queue(tmp_path, proxy, transformations)).run(load(name), workdir)
    assert result.outcome == "credential_failed"
    assert not (workdir / "recorded-argv.json").exists()


def test_records_cover_the_real_grammar():
    pars = {n: load(n).job_pars for n in records()}
    assert any("'IROOT'" in p for p in pars.values())
    assert any("--inMap" in p or " -p " in p for p in pars.values())
    assert any(len(load(n).in_files) >= 20 for n in records())
    assert any(len([f for f in load(n).out_files if f != load(n).log_file]) >= 2
               and ADAPTER[n] == "runGen" for n in records())


ANALYSIS = [n for n in records() if ADAPTER.get(n) != "production"]
#: Records whose jobPars, as bash splits them, lose their -o: the real transformation would
#: write no output either, so none is expected of the stand-in.
NO_OUTPUT_AS_BASH_SPLITS_IT = {
    # "-l ${LIB} -o {...}": bash drops the unset ${LIB}, so getopt takes -o as -l's value
    # and stops at the dict, as runGen's own getopt would.
    "doma-rungen-token-username.json",
}


def _stage(workdir: Path, job: JobSpec) -> None:
    """The job's inputs, as the pilot stages them: a library tarball is a real tar."""
    for name in job.in_files:
        path = workdir / name
        if name.endswith("lib.tgz"):
            with tarfile.open(path, "w:gz") as library:
                data = b"// built\n"
                info = tarfile.TarInfo("lib/libUser.so")
                info.size = len(data)
                library.addfile(info, io.BytesIO(data))
        else:
            path.write_bytes(b"events\n")


@pytest.mark.parametrize("name", ANALYSIS)
def test_the_stand_ins_accept_the_real_grammar_and_write_every_output(name, tmp_path, ca):
    job = load(name)
    if is_dn(job.prod_user_id or ""):
        proxy, fields = proxy_of(ca, owner_of(job), tmp_path / "x509up_user"), {}
    else:
        proxy = proxy_of(ca, SITE_DN, tmp_path / "x509up_site")
        fields = {"jobs_without_dn": "queue_proxy"}
    settings = QueueSettings.from_mapping("ANALY_DEMO", {
        "switcher": "noop", "credential_source": "file", "proxy_file": str(proxy),
        "standin_transformations": True, **fields})
    workdir = tmp_path / "work"
    workdir.mkdir()
    _stage(workdir, job)
    result = build_launcher(settings).run(job, workdir)
    assert (result.outcome, result.error) == ("succeeded", None), Path(
        result.stderr).read_text()
    if name in NO_OUTPUT_AS_BASH_SPLITS_IT:
        return
    for output in build_strategies(settings).payload_for(job).outputs(job):
        assert (workdir / output).is_file(), output
