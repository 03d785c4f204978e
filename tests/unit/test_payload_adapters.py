"""buildJob and runAthena adapters: choosing by stem, locating, argv, outputs."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import JobDescriptionError, TransformationNotFoundError
from pilotid.interfaces import IPayload
from pilotid.payloads.buildjob import BuildGenPayload, BuildJobPayload
from pilotid.payloads.job import JobSpec, PayloadCommand
from pilotid.payloads.production import ProductionPayload
from pilotid.payloads.runathena import RunAthenaPayload
from pilotid.payloads.rungen import RunGenPayload
from pilotid.payloads.transformation import (
    STANDIN_DIR,
    interpreter_for,
    locate_transformation,
    read_options,
    split_job_pars,
    transformation_stem,
)
from pilotid.queue import QueueSettings

QUEUE = QueueSettings("ANALY_TEST", setup=("source /cvmfs/atlas/setup.sh",),
                      standin_transformations=True)


def job(transformation="runAthena-00-00-11", **kw) -> JobSpec:
    return JobSpec(panda_id=42, transformation=transformation, **kw)


@pytest.mark.parametrize("cls", [BuildJobPayload, RunAthenaPayload, BuildGenPayload,
                                 RunGenPayload, ProductionPayload])
def test_adapters_provide_the_payload_interface(cls):
    assert verifyClass(IPayload, cls)
    assert verifyObject(IPayload, cls(QUEUE))


@pytest.mark.parametrize("transformation, stem", [
    ("runAthena-00-00-11", "runAthena"),
    ("buildJob-00-00-03", "buildJob"),
    ("runAthena", "runAthena"),
    ("/cvmfs/atlas.cern.ch/trf/runAthena-00-00-11", "runAthena"),
    ("http://pandaserver.cern.ch:25080/trf/user/buildJob-00-00-03?x=1", "buildJob"),
    ("runAthena.py", "runAthena"),
    ("runGen-00-00-02", "runGen"),
])
def test_transformation_stem(transformation, stem):
    assert transformation_stem(transformation) == stem


def test_each_adapter_accepts_its_own_transformation_only():
    run, build = RunAthenaPayload(QUEUE), BuildJobPayload(QUEUE)
    assert run.accepts(job("runAthena-00-00-11")) and not build.accepts(job("runAthena-00-00-11"))
    assert build.accepts(job("http://x/trf/buildJob-00-00-03"))
    assert not run.accepts(job("runGen-00-00-02")) and not run.accepts(job("runathena"))


def test_stand_ins_are_found_by_stem():
    assert locate_transformation("runAthena-00-00-11", [STANDIN_DIR]) == STANDIN_DIR / "runAthena"
    assert locate_transformation("https://h/trf/buildJob-1", [STANDIN_DIR]) == \
        STANDIN_DIR / "buildJob"


def test_queue_directories_come_before_the_stand_ins(tmp_path):
    (tmp_path / "runAthena-00-00-11").write_text("#!/bin/sh\n")
    settings = QueueSettings("Q", transformation_dirs=(tmp_path,))
    command = RunAthenaPayload(settings).command(job(), tmp_path)
    assert command.argv[:2] == ("/bin/sh", str(tmp_path / "runAthena-00-00-11"))


def test_a_path_from_the_job_is_not_executed_as_given(tmp_path):
    """Only the name counts: /tmp/evil/runAthena is looked up in the site's directories."""
    evil = tmp_path / "runAthena"
    evil.write_text("#!/bin/sh\necho evil\n")
    command = RunAthenaPayload(QUEUE).command(job(str(evil)), tmp_path)
    assert command.argv[2] == str(STANDIN_DIR / "runAthena")


def test_transformation_not_found_names_where_it_looked(tmp_path):
    settings = QueueSettings("Q", transformation_dirs=(tmp_path,), standin_transformations=True)
    with pytest.raises(TransformationNotFoundError) as caught:
        RunAthenaPayload(settings).command(job("runAthenaX-00-01"), tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message and str(STANDIN_DIR) in message
    assert "runAthenaX-00-01" in message


@pytest.mark.parametrize("name", ["", "/", "http://host/", ".."])
def test_a_transformation_naming_no_file_is_refused(name):
    with pytest.raises(TransformationNotFoundError):
        locate_transformation(name, [STANDIN_DIR])


def test_interpreter_comes_from_the_shebang(tmp_path):
    script = tmp_path / "trf"
    script.write_text("#!/usr/bin/env python3\n")
    script.chmod(0o644)  # installing may lose the execute bit: the #! line still works
    assert interpreter_for(script) == ["/usr/bin/env", "python3", str(script)]


def test_an_executable_without_shebang_runs_as_is(tmp_path):
    binary = tmp_path / "trf"
    binary.write_bytes(b"\x7fELF")
    binary.chmod(0o755)
    assert interpreter_for(binary) == [str(binary)]
    binary.chmod(0o644)
    if os.getuid() != 0:  # root may execute anything with any x bit; none is set here
        with pytest.raises(TransformationNotFoundError, match="neither executable"):
            interpreter_for(binary)


def test_command_builds_argv_environment_and_setup(tmp_path):
    spec = job(job_pars="-i \"['a.root']\" -o \"{'hist': 'user.h.root'}\" -j 'my jo.py'",
               sw_release="Atlas-17.0.5")
    command = RunAthenaPayload(QUEUE).command(spec, tmp_path)
    assert isinstance(command, PayloadCommand)
    assert command.argv == ("/usr/bin/env", "python3", str(STANDIN_DIR / "runAthena"),
                            "-i", "['a.root']", "-o", "{'hist': 'user.h.root'}",
                            "-j", "my jo.py")
    assert dict(command.environment) == {"PANDAID": "42", "ATLAS_RELEASE": "Atlas-17.0.5"}
    assert command.setup == ("source /cvmfs/atlas/setup.sh",)


def test_unbalanced_quotes_in_jobpars_are_a_job_error(tmp_path):
    with pytest.raises(JobDescriptionError, match="jobPars.*quote is not closed"):
        RunAthenaPayload(QUEUE).command(job(job_pars="-j 'unterminated"), tmp_path)


@pytest.mark.parametrize("nasty", ["$(touch {c})", "`touch {c}`", "x ; touch {c}",
                                   "x | tee {c}", "x && touch {c}", "x > {c}", "x\ntouch {c}",
                                   "\"${{HOME:-x}}\"", "$1", "~/x", "{{a,b}}"])
def test_jobpars_only_a_shell_could_run_are_refused(nasty, tmp_path):
    canary = tmp_path / "canary"
    with pytest.raises(JobDescriptionError, match="jobPars.*runs no shell"):
        RunAthenaPayload(QUEUE).command(job(job_pars=nasty.format(c=canary)), tmp_path)
    assert not canary.exists()


def test_quoted_shell_syntax_becomes_plain_arguments(tmp_path):
    nasty = "'$(id)' \"\\`id\\`\" ';' \\| %s %n \\$HOME '\n'"
    command = RunAthenaPayload(QUEUE).command(job(job_pars=nasty), tmp_path)
    assert command.argv[3:] == ("$(id)", "`id`", ";", "|", "%s", "%n", "$HOME", "\n")


def test_a_plain_parameter_is_expanded_from_the_jobs_own_variables_only(tmp_path):
    """As the real pilot's bash would in a clean environment: ${LIB} (unset) vanishes."""
    command = RunAthenaPayload(QUEUE).command(
        job(job_pars="-l ${LIB} -r $PANDAID \"$HOME\""), tmp_path)
    assert command.argv[3:] == ("-l", "-r", "42", "")


def test_the_pilot_directive_overwrite_queuedata_is_dropped(tmp_path):
    command = RunAthenaPayload(QUEUE).command(
        job(job_pars="-j a.py --overwriteQueuedata={allowfax=False} -r ."), tmp_path)
    assert command.argv[3:] == ("-j", "a.py", "-r", ".")


#: Any word but an option, whose value runAthena reads (tested on its own above): this
#: property is about the quoting only.
words = st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                         max_size=40).filter(lambda word: not word.startswith("-")), max_size=8)


@settings(max_examples=200, deadline=None)
@given(words)
def test_any_argument_list_survives_jobpars_byte_for_byte(args):
    """What the dispatcher quoted (shlex.join) comes back as exactly those arguments."""
    spec = job(job_pars=shlex.join(args))
    command = RunAthenaPayload(QUEUE).command(spec, Path("/tmp"))
    assert list(command.argv[3:]) == args


def test_buildjob_outputs_are_the_library_and_outfiles():
    spec = job("buildJob-00-00-03", job_pars="-i src.tgz -o user.alice.lib.tgz",
               out_files=("user.alice.lib.tgz", "user.alice.log.tgz"),
               log_file="user.alice.log.tgz")
    assert BuildJobPayload(QUEUE).outputs(spec) == ("user.alice.lib.tgz",)


def test_buildjob_library_must_stay_in_the_workdir(tmp_path):
    spec = job("buildJob-00-00-03", job_pars="-i src.tgz -o ../../etc/lib.tgz")
    with pytest.raises(JobDescriptionError, match="jobPars -o"):
        BuildJobPayload(QUEUE).command(spec, tmp_path)


def test_runathena_outputs_are_outfiles_and_the_stage_out_names_of_o():
    spec = job(job_pars="-o \"{'hist': 'user.h.root', "
                        "'IROOT': [('nt.root', 'sub/user.nt.root')]}\"",
               out_files=("user.h.root", "extra.root", "log.tgz"), log_file="log.tgz")
    assert RunAthenaPayload(QUEUE).outputs(spec) == ("user.h.root", "extra.root",
                                                     "sub/user.nt.root")


@pytest.mark.parametrize("value", ["not a literal", "['a']", "{'a': 1}", "{'hist': '/abs'}",
                                   "{'a': '../x'}", "{'a': ''}", "{'IROOT': [('x', 3)]}",
                                   "__import__('os').system('id')"])
def test_runathena_rejects_a_bad_o_mapping(value, tmp_path):
    spec = job(job_pars=f"-o {shlex.quote(value)}")
    with pytest.raises(JobDescriptionError, match="jobPars"):
        RunAthenaPayload(QUEUE).command(spec, tmp_path)


def test_split_job_pars_keeps_empty_and_unicode_arguments():
    assert split_job_pars("'' é \"a b\"") == ["", "é", "a b"]


# --- stand-ins only where asked, runGen, buildGen, production ----------------------------------


def test_a_queue_that_does_not_ask_for_the_stand_ins_never_runs_one(tmp_path):
    plain = QueueSettings("ANALY_PROD", transformation_dirs=(tmp_path,))
    with pytest.raises(TransformationNotFoundError) as caught:
        RunAthenaPayload(plain).command(job(), tmp_path)
    assert str(tmp_path) in str(caught.value)
    assert str(STANDIN_DIR) not in str(caught.value)


def test_a_queue_with_no_transformation_dirs_says_so(tmp_path):
    with pytest.raises(TransformationNotFoundError, match="names no transformation_dirs"):
        RunAthenaPayload(QueueSettings("ANALY_PROD")).command(job(), tmp_path)


def test_rungen_expects_the_output_names_of_o_but_not_a_regex():
    pars = ("-p \"python%20a.py%20%25IN\" -o \"{'out.root': 'user.a._01.out.root', "
            "'regex|h.*': 'regex|user.a._01.h.*', 'x*.txt': 'user.a._01.x.tgz'}\"")
    spec = job("runGen-00-00-02", job_pars=pars)
    assert RunGenPayload(QUEUE).outputs(spec) == ("user.a._01.out.root", "user.a._01.x.tgz")


@pytest.mark.parametrize("pars", ["-o \"['a']\"", "-o \"{'a': 1}\"", "--inMap \"{'IN': [\"",
                                  "-i \"__import__('os')\""])
def test_rungen_refuses_malformed_literals(pars, tmp_path):
    with pytest.raises(JobDescriptionError, match="jobPars"):
        RunGenPayload(QUEUE).command(job("runGen-00-00-02", job_pars=pars), tmp_path)


def test_buildgen_expects_the_library_and_not_the_sources():
    spec = job("buildGen-00-00-01", job_pars="-i src.tgz -o user.lib.tgz --bexec make",
               out_files=("user.lib.tgz", "log.tgz"), log_file="log.tgz")
    assert BuildGenPayload(QUEUE).outputs(spec) == ("user.lib.tgz",)
    assert BuildGenPayload(QUEUE).accepts(spec) and not BuildJobPayload(QUEUE).accepts(spec)


def test_options_are_read_as_getopt_reads_them():
    assert read_options(["-oX", "-b", "-bi", "Y", "--inMap={}", "--sourceURL", "u", "--",
                         "-o", "Z"], "oi", ["inMap", "sourceURL"], "b") == {
        "-o": "X", "-i": "Y", "--inMap": "{}", "--sourceURL": "u"}


def test_production_runs_an_installed_transformation_with_the_words_unchanged(tmp_path):
    trf = tmp_path / "Reco_tf.py"
    trf.write_text("#!/bin/sh\n")
    settings = QueueSettings("ANALY_PROD", transformation_dirs=(tmp_path,))
    spec = job("Reco_tf.py", job_pars="--maxEvents=1 --inputHITSFile H.root preExec='a; b'",
               out_files=("RDO.root", "log.tgz"), log_file="log.tgz")
    adapter = ProductionPayload(settings)
    assert adapter.accepts(spec)
    assert adapter.command(spec, tmp_path).argv == (
        "/bin/sh", str(trf), "--maxEvents=1", "--inputHITSFile", "H.root", "preExec=a; b")
    assert adapter.outputs(spec) == ("RDO.root",)


@pytest.mark.parametrize("transformation", ["Sim_tf.py", "http://host/trf/Reco_tf.py"])
def test_production_does_not_accept_what_the_site_did_not_install(transformation, tmp_path):
    (tmp_path / "Reco_tf.py").write_text("#!/bin/sh\n")
    settings = QueueSettings("ANALY_PROD", transformation_dirs=(tmp_path,))
    assert not ProductionPayload(settings).accepts(job(transformation))
    assert not ProductionPayload(QUEUE).accepts(job("runAthena-00-00-11"))
