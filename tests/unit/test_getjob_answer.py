"""The job record in both forms the dispatcher sends: the URL-encoded getJob answer and JSON."""

from __future__ import annotations

import io
import json
import sys

import pytest

from pilotid import cli
from pilotid.errors import JobDescriptionError
from pilotid.payloads.job import load_job, parse_job_record

ANSWER = ("StatusCode=0&PandaID=1986227157&transformation=AtlasG4_trf.py&jobPars=maxEvents%3D2"
          "+skipEvents%3D0+--overwriteQueuedata%3D%7Ballowfax%3DFalse%7D+&prodUserID=NULL"
          "&inFiles=DBRelease-24.6.1.tar.gz%2CEVNT.420738._000001.pool.root.1"
          "&outFiles=Hits.pool.root%2Cjob.log.tgz&logFile=job.log.tgz"
          "&prodSourceLabel=prod_test&swRelease=Atlas-16.6.7&maxCpuCount=0&credname=NULL")


def test_the_url_encoded_answer_is_read_with_null_as_none():
    job = parse_job_record(ANSWER)
    assert (job.panda_id, job.transformation) == (1986227157, "AtlasG4_trf.py")
    assert job.job_pars == "maxEvents=2 skipEvents=0 --overwriteQueuedata={allowfax=False} "
    assert job.prod_user_id is None and job.credname is None
    assert job.in_files == ("DBRelease-24.6.1.tar.gz", "EVNT.420738._000001.pool.root.1")
    assert job.out_files == ("Hits.pool.root", "job.log.tgz")
    assert job.max_cpu_time == 0


def test_null_jobpars_is_no_arguments():
    assert parse_job_record("PandaID=1&transformation=t&jobPars=NULL").job_pars == ""


def test_a_key_given_twice_is_refused():
    with pytest.raises(JobDescriptionError, match="'PandaID' is given twice"):
        parse_job_record("PandaID=1&transformation=t&PandaID=2")


@pytest.mark.parametrize("text", ["just words", "PandaID=1&&bad", b"PandaID=1&x=%FF"])
def test_text_that_is_no_record_is_refused(text):
    with pytest.raises(JobDescriptionError):
        parse_job_record(text)


def test_the_json_form_and_a_table_of_one_job_by_pandaid_read_the_same():
    record = {"PandaID": 7, "transformation": "runGen-00-00-02", "jobPars": "-o x"}
    assert parse_job_record(json.dumps(record)) == parse_job_record(json.dumps({"7": record}))


def test_load_job_reads_the_answer_from_a_file_and_names_it(tmp_path):
    path = tmp_path / "getjob.txt"
    path.write_text(ANSWER)
    assert load_job(path).panda_id == 1986227157
    path.write_text("PandaID=x&transformation=t")
    with pytest.raises(JobDescriptionError, match=f"{path}: field 'PandaID'"):
        load_job(path)


def test_load_job_reads_standard_input_for_dash(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(ANSWER.encode())))
    assert load_job("-").panda_id == 1986227157


def test_run_reads_the_job_from_standard_input(monkeypatch, tmp_path, capsys):
    queues = tmp_path / "queues.json"
    queues.write_text(json.dumps({"queues": {"Q": {"switcher": "noop"}}}))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"PandaID=x")))
    status = cli.main(["-q", "run", "--queues", str(queues), "--queue", "Q", "--job", "-",
                       "--workdir", str(tmp_path), "--json"])
    assert status == 20
    assert "standard input" in capsys.readouterr().err
