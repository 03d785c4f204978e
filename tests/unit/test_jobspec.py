"""JobSpec from a PanDA job description: fields accepted, and each error naming its field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pilotid.errors import JobDescriptionError
from pilotid.payloads.job import JobSpec, load_job

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobs"
MINIMAL = {"PandaID": 1, "transformation": "runAthena-00-00-11"}


def parse(**fields):
    return JobSpec.from_description({**MINIMAL, **fields})


def test_a_full_panda_description_is_read():
    job = JobSpec.from_description({
        "PandaID": "4242001", "transformation": "runAthena-00-00-11",
        "jobPars": "-i '[\"a.root\"]'", "prodUserID": "/DC=org/CN=Alice",
        "credname": "cred", "myproxy": "myproxy.example.org:7512",
        "homepackage": "AnalysisTransforms", "swRelease": "Atlas-17.0.5",
        "inFiles": "a.root,b.root", "outFiles": ["out.root", "log.tgz"],
        "logFile": "log.tgz", "prodSourceLabel": "user", "maxCpuCount": "86400",
        "cloud": "US", "destinationSE": "NULL", "someFutureField": {"x": 1},
    })
    assert job == JobSpec(
        panda_id=4242001, transformation="runAthena-00-00-11", job_pars="-i '[\"a.root\"]'",
        prod_user_id="/DC=org/CN=Alice", credname="cred", myproxy="myproxy.example.org:7512",
        home_package="AnalysisTransforms", sw_release="Atlas-17.0.5",
        in_files=("a.root", "b.root"), out_files=("out.root", "log.tgz"), log_file="log.tgz",
        prod_source_label="user", max_cpu_time=86400)


def test_optional_fields_default_when_absent_null_or_NULL():
    for unset in (None, "", "NULL"):
        job = parse(prodUserID=unset, inFiles=unset, logFile=unset, maxCpuCount=unset,
                    jobPars=None)
        assert job.prod_user_id is None and job.in_files == () and job.log_file is None
        assert job.max_cpu_time is None and job.job_pars == ""


def test_comma_lists_are_trimmed_and_empty_entries_dropped():
    assert parse(inFiles=" a.root , ,b.root,").in_files == ("a.root", "b.root")
    assert parse(outFiles=["x.root", " y.root "]).out_files == ("x.root", "y.root")


def test_file_names_may_sit_in_subdirectories():
    assert parse(outFiles="out/hist.root").out_files == ("out/hist.root",)


@pytest.mark.parametrize("fields, field", [
    ({"PandaID": None}, "PandaID"),
    ({"PandaID": "12a"}, "PandaID"),
    ({"PandaID": -3}, "PandaID"),
    ({"PandaID": True}, "PandaID"),
    ({"PandaID": 1.5}, "PandaID"),
    ({"transformation": ""}, "transformation"),
    ({"transformation": "   "}, "transformation"),
    ({"transformation": 7}, "transformation"),
    ({"transformation": "run\nAthena"}, "transformation"),
    ({"jobPars": ["-i", "x"]}, "jobPars"),
    ({"jobPars": "a\x00b"}, "jobPars"),
    ({"prodUserID": 12}, "prodUserID"),
    ({"prodUserID": "/CN=a\nb"}, "prodUserID"),
    ({"swRelease": {"v": 1}}, "swRelease"),
    ({"inFiles": 3}, "inFiles"),
    ({"inFiles": ["a.root", 3]}, "inFiles"),
    ({"inFiles": "/etc/passwd"}, "inFiles"),
    ({"outFiles": "ok.root,../../escape"}, "outFiles"),
    ({"logFile": "/tmp/log.tgz"}, "logFile"),
    ({"maxCpuCount": "lots"}, "maxCpuCount"),
])
def test_a_bad_field_is_named(fields, field):
    with pytest.raises(JobDescriptionError, match=f"field '{field}'"):
        JobSpec.from_description({**MINIMAL, **fields})


def test_missing_transformation_is_named():
    with pytest.raises(JobDescriptionError, match="field 'transformation' is required"):
        JobSpec.from_description({"PandaID": 1})


def test_a_description_must_be_an_object():
    with pytest.raises(JobDescriptionError, match="JSON object"):
        JobSpec.from_description(["PandaID", 1])  # type: ignore[arg-type]


def test_a_very_long_bad_value_is_cut_short_in_the_message():
    with pytest.raises(JobDescriptionError) as caught:
        parse(PandaID="x" * 10000)
    assert len(str(caught.value)) < 200


def test_jobpars_keeps_newlines_and_quotes_byte_for_byte():
    text = "-j 'a b'\n--x=\"$(id)\" `id` ; | % é"
    assert parse(jobPars=text).job_pars == text


def test_load_job_reads_a_file(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(json.dumps(MINIMAL))
    assert load_job(path).panda_id == 1


def test_load_job_names_the_file_and_the_field(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"PandaID": "x", "transformation": "t"}))
    with pytest.raises(JobDescriptionError, match=f"{path}: field 'PandaID'"):
        load_job(path)


def test_malformed_json_reports_line_and_column(tmp_path):
    path = tmp_path / "job.json"
    path.write_text('{"PandaID": 1,\n  "transformation": }\n')
    with pytest.raises(JobDescriptionError,
                       match=r"job.json is not valid JSON: .* line 2 column 21"):
        load_job(path)


def test_missing_job_file_is_named(tmp_path):
    with pytest.raises(JobDescriptionError, match="cannot read job description .*nope.json"):
        load_job(tmp_path / "nope.json")


def test_non_utf8_job_file_is_refused(tmp_path):
    path = tmp_path / "job.json"
    path.write_bytes(b'{"PandaID": 1, "transformation": "\xff"}')
    with pytest.raises(JobDescriptionError, match="not UTF-8"):
        load_job(path)


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_example_jobs_load(name):
    job = load_job(EXAMPLES / name)
    assert job.panda_id > 0 and job.transformation
