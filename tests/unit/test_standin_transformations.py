"""The stand-in transformations, run for real from the argv the adapters build."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import tarfile
import urllib.parse
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotid.errors import JobDescriptionError
from pilotid.payloads.buildjob import BuildGenPayload, BuildJobPayload
from pilotid.payloads.job import JobSpec, load_job, parse_job_record
from pilotid.payloads.runathena import RunAthenaPayload
from pilotid.payloads.rungen import RunGenPayload
from pilotid.payloads.transformation import STANDIN_DIR
from pilotid.queue import QueueSettings

QUEUE = QueueSettings("ANALY_TEST", standin_transformations=True)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(command, workdir: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           **dict(command.environment)}
    return subprocess.run(list(command.argv), cwd=workdir, env=env, capture_output=True,
                          timeout=60)


def lines(output: bytes) -> dict:
    return dict(line.split("=", 1) for line in output.decode().splitlines() if "=" in line)


def test_stand_ins_say_they_are_stand_ins():
    for name, owner in (("buildJob", "ATLAS"), ("runAthena", "ATLAS"), ("runGen", "PanDA")):
        text = (STANDIN_DIR / name).read_text()
        assert "STAND-IN" in text.split("\n\n")[0] and f"NOT {owner}'s {name}" in text


def test_examples_link_to_the_packaged_stand_ins():
    for name in ("buildJob", "runAthena", "buildGen", "runGen"):
        assert (EXAMPLES / "transformations" / name).resolve() == (STANDIN_DIR / name).resolve()


def test_runathena_reads_inputs_and_writes_the_outputs_named_in_jobpars(tmp_path):
    (tmp_path / "a.root").write_bytes(b"A" * 10)
    (tmp_path / "b.root").write_bytes(b"B" * 20)
    spec = JobSpec(panda_id=7, transformation="runAthena-00-00-11",
                   job_pars="-i \"['a.root', 'b.root']\" -o \"{'hist': 'user.h.root', "
                            "'IROOT': [('nt/aan.root', 'nt/user.aan.root')]}\"",
                   out_files=("user.h.root", "log.tgz"), log_file="log.tgz")
    adapter = RunAthenaPayload(QUEUE)
    done = run(adapter.command(spec, tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout)["uid"] == str(os.getuid())
    for name in adapter.outputs(spec):
        assert (tmp_path / name).is_file()
    record = json.loads((tmp_path / "user.h.root").read_text())
    assert [i["size"] for i in record["inputs"]] == [10, 20]
    assert not (tmp_path / "nt/aan.root").exists()


def test_runathena_writes_every_real_o_shape():
    """hist, TAG, THIST and ntuple pairs, AANT triples, UserData names: each an output."""
    pars = ("-o \"{'hist': 'u.hist.root', 'TAG': 'u.TAG.coll.root', 'THIST': [('s1', "
            "'u.thist.root')], 'AANT': [('a', 's', 'u.aan.root')], 'UserData': "
            "['u.data.root']}\"")
    spec = JobSpec(panda_id=7, transformation="runAthena", job_pars=pars)
    assert set(RunAthenaPayload(QUEUE).outputs(spec)) == {
        "u.hist.root", "u.TAG.coll.root", "u.thist.root", "u.aan.root", "u.data.root"}


def test_runathena_refuses_a_comma_list_of_inputs_as_the_real_one_would(tmp_path):
    spec = JobSpec(panda_id=7, transformation="runAthena", job_pars="-i a.root,b.root")
    try:
        RunAthenaPayload(QUEUE).command(spec, tmp_path)
    except JobDescriptionError as error:
        assert "-i is not a Python literal" in str(error)
    else:
        raise AssertionError("a comma list passed as -i")


def test_rungen_runs_the_command_record_and_writes_both_outputs(tmp_path):
    (tmp_path / "in1.root").write_text("events")
    pars = ("-j \"\" -p \"python%20ana.py%20%25IN\" -i \"['in1.root']\" -o \"{'out.root': "
            "'user.a.1._000001.out.root', 'hist*.root': 'user.a.1._000001.hist.tgz'}\" "
            "--inMap \"{'IN': ['in1.root']}\"")
    spec = JobSpec(panda_id=9, transformation="runGen-00-00-02", job_pars=pars)
    adapter = RunGenPayload(QUEUE)
    done = run(adapter.command(spec, tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert set(adapter.outputs(spec)) == {"user.a.1._000001.out.root",
                                          "user.a.1._000001.hist.tgz"}
    record = json.loads((tmp_path / "user.a.1._000001.out.root").read_text())
    assert record["command"] == "python ana.py in1.root"
    assert (tmp_path / "user.a.1._000001.hist.tgz").is_file()


def test_buildgen_stand_in_takes_the_sources_from_a_file_url_cache(tmp_path):
    (tmp_path / "cache").mkdir()
    _tarball(tmp_path / "cache" / "src.tgz", {"a.py": b"print(1)"})
    work = tmp_path / "work"
    work.mkdir()
    spec = JobSpec(panda_id=8, transformation="buildGen-00-00-01",
                   job_pars=f"-i src.tgz -o user.lib.tgz --sourceURL file://{tmp_path} "
                            "--bexec make%20all")
    done = run(BuildGenPayload(QUEUE).command(spec, work), work)
    assert done.returncode == 0, done.stderr
    with tarfile.open(work / "user.lib.tgz") as library:
        assert "src/a.py" in library.getnames()


def test_runathena_fails_with_3_on_a_missing_input(tmp_path):
    spec = JobSpec(panda_id=7, transformation="runAthena", job_pars="-i '[\"gone.root\"]'")
    done = run(RunAthenaPayload(QUEUE).command(spec, tmp_path), tmp_path)
    assert done.returncode == 3
    assert b"gone.root is missing" in done.stderr


def test_runathena_fail_option_sets_the_status(tmp_path):
    spec = JobSpec(panda_id=7, transformation="runAthena", job_pars="--fail 9")
    assert run(RunAthenaPayload(QUEUE).command(spec, tmp_path), tmp_path).returncode == 9


def test_runathena_reports_what_it_may_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("x")
    spec = JobSpec(panda_id=7, transformation="runAthena",
                   job_pars=f"--try-read {secret} --try-read {tmp_path}/none")
    done = run(RunAthenaPayload(QUEUE).command(spec, tmp_path), tmp_path)
    assert f"try-read {secret}: readable".encode() in done.stdout
    assert b"/none: missing" in done.stdout


def _tarball(path: Path, members: dict) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_buildjob_makes_a_library_from_a_sources_tarball(tmp_path):
    _tarball(tmp_path / "src.tgz", {"./pkg/a.cxx": b"int a;", "../evil": b"x", "/abs": b"y"})
    spec = JobSpec(panda_id=8, transformation="buildJob-00-00-03",
                   job_pars="-i src.tgz -o libs/user.lib.tgz")
    adapter = BuildJobPayload(QUEUE)
    done = run(adapter.command(spec, tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert adapter.outputs(spec) == ("libs/user.lib.tgz",)
    with tarfile.open(tmp_path / "libs/user.lib.tgz") as library:
        assert sorted(library.getnames()) == ["lib/BUILD-INFO.json", "src/pkg/a.cxx"]
        info = json.load(library.extractfile("lib/BUILD-INFO.json"))
    assert info["uid"] == os.getuid() and info["files"][0]["name"] == "pkg/a.cxx"


def test_buildjob_takes_a_sources_directory(tmp_path):
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "b.cxx").write_text("int b;")
    spec = JobSpec(panda_id=8, transformation="buildJob", job_pars="-i src -o lib.tgz")
    assert run(BuildJobPayload(QUEUE).command(spec, tmp_path), tmp_path).returncode == 0
    with tarfile.open(tmp_path / "lib.tgz") as library:
        assert "src/pkg/b.cxx" in library.getnames()


def test_buildjob_fails_with_3_on_missing_sources(tmp_path):
    spec = JobSpec(panda_id=8, transformation="buildJob", job_pars="-i none.tgz -o lib.tgz")
    done = run(BuildJobPayload(QUEUE).command(spec, tmp_path), tmp_path)
    assert done.returncode == 3 and b"none.tgz are missing" in done.stderr


def test_example_jobs_run_build_then_analysis(tmp_path):
    build = load_job(EXAMPLES / "jobs" / "buildJob.json")
    assert build.in_files == ()  # buildJob fetches its sources itself, from sourceURL
    _tarball(tmp_path / "user.alice.4242000.sources.tar.gz",
             {"MyAnalysis/src/Ana.cxx": b"// analysis"})
    assert run(BuildJobPayload(QUEUE).command(build, tmp_path), tmp_path).returncode == 0
    analysis = load_job(EXAMPLES / "jobs" / "runAthena.json")
    for name in analysis.in_files:
        if not (tmp_path / name).exists():
            (tmp_path / name).write_bytes(os.urandom(64))
    adapter = RunAthenaPayload(QUEUE)
    done = run(adapter.command(analysis, tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert b"library user.alice.4242000.lib.tgz (2 members)" in done.stdout
    assert all((tmp_path / name).is_file() for name in adapter.outputs(analysis))


#: Quoting is the point here: no option words, whose values the adapter reads itself.
text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=30).filter(lambda word: not word.startswith("-"))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(text, max_size=5))
def test_arguments_reach_the_stand_in_byte_for_byte(tmp_path, args):
    canary = tmp_path / "canary"
    args = [*args, f"$(touch {canary})", f"`touch {canary}`", ";", "|", "\n", "%s"]
    spec = JobSpec(panda_id=1, transformation="runAthena", job_pars=shlex.join(args))
    done = run(RunAthenaPayload(QUEUE).command(spec, tmp_path), tmp_path)
    assert json.loads(lines(done.stdout)["argv-json"]) == args
    assert not canary.exists()


def test_runathena_old_o_form_with_twenty_inputs_from_a_getjob_answer(tmp_path):
    """A hand-made answer in the shape of runAthena-00-00-11 jobs (the public records have
    no such one): 'hist' and 'ntuple' outputs, twenty inputs, --inputGUIDs."""
    inputs = [f"data11_7TeV.00180164.AOD._lb{n:04d}.pool.root.1" for n in range(20)]
    for name in inputs:
        (tmp_path / name).write_bytes(b"events")
    outputs = {"hist": "user.alice.4242.hist.root",
               "ntuple": [("AANT", "user.alice.4242.aan.root")]}
    pars = (f"-j AnalysisSkeleton_topOptions.py -i \"{inputs!r}\" -o \"{outputs!r}\" "
            f"--inputGUIDs \"{['G%d' % n for n in range(20)]!r}\" -r ./ --sourceURL https://x")
    answer = urllib.parse.urlencode({
        "PandaID": "4242", "transformation": "http://h/trf/user/runAthena-00-00-11",
        "jobPars": pars, "inFiles": ",".join(inputs), "prodUserID": "NULL",
        "outFiles": "user.alice.4242.hist.root,user.alice.4242.aan.root,log.tgz",
        "logFile": "log.tgz"})
    spec = parse_job_record(answer)
    adapter = RunAthenaPayload(QUEUE)
    assert adapter.outputs(spec) == ("user.alice.4242.hist.root", "user.alice.4242.aan.root")
    done = run(adapter.command(spec, tmp_path), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(b"read data11_7TeV") == 20
    assert all((tmp_path / name).is_file() for name in adapter.outputs(spec))
