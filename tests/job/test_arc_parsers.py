"""The ARC backend's parsers on REAL ARC 6.17 client output (tests/job/data/arc/, captured from the
test A-REX of tests/services/arc.py), and its xRSL rendering."""

from __future__ import annotations

import os
import re

import pytest

from pylaw.errors import JobFileError
from pylaw.job.arc import (
    UNREACHABLE,
    ARCJobFileFactory,
    ARCSettings,
    parse_arcstat,
    parse_submitted,
    parse_xrsl_options,
    xrsl_string,
)
from pylaw.job.base import JobContext, JobRequest, JobStatus
from pylaw.workflow.arc import megabytes

DATA = os.path.join(os.path.dirname(__file__), "data", "arc")
URL = "https://localhost:35469/arex/rest/1.0/jobs/"


def data(name: str) -> str:
    with open(os.path.join(DATA, name)) as f:
        return f.read()


def test_arcsub_job_urls_in_order():
    urls = parse_submitted(data("arcsub_three.txt"))
    assert len(urls) == 3 and all(u.startswith(URL) for u in urls)
    assert urls[0].endswith("LhsLDmsp1sAoOSAtDmABFKDmABFKDmABFKDmCRLKDmJBFKDmJL0pOm")
    assert parse_submitted(data("arcsub_unreachable.txt")) == []
    assert UNREACHABLE.search(data("arcsub_unreachable.txt"))
    assert not UNREACHABLE.search(data("arcsub_bad_description.txt"))  # a refusal, not a dead endpoint


def test_arcstat_states_names_and_exit_codes():
    states, names, unknown = parse_arcstat(data("arcstat_ended.txt"))
    by_name = {names[url]: state for url, state in states.items()}
    assert by_name["slow"].status is JobStatus.FINISHED and by_name["slow"].exit_code == 0
    assert by_name["ok"].status is JobStatus.FINISHED
    failed = by_name["fail"]
    assert failed.status is JobStatus.FAILED and failed.exit_code == 3
    assert failed.reason == "Failed: LRMS error: (3) Job finished with wrong exit code - 3 != 0"
    assert unknown == set()


@pytest.mark.parametrize("name,expected", [
    ("arcstat_running.txt", {"slow": JobStatus.RUNNING, "fail": JobStatus.RUNNING, "ok": JobStatus.PENDING}),
    ("arcstat_accepted.txt", {"slow": JobStatus.PENDING, "fail": JobStatus.PENDING, "ok": JobStatus.PENDING}),
    ("arcstat_killed.txt", {"slow": JobStatus.FAILED}),
    ("arcstat_long.txt", {"slow": JobStatus.PENDING}),
])
def test_arcstat_status_map(name, expected):
    states, names, _ = parse_arcstat(data(name))
    assert {names[url]: state.status for url, state in states.items()} == expected


def test_killed_job_reason_and_long_format():
    (state,) = parse_arcstat(data("arcstat_killed.txt"))[0].values()
    assert state.reason == "Killed: Job is canceled by external request"
    _, names, _ = parse_arcstat(data("arcstat_long.txt"))  # -l adds fields; only ours are read
    assert list(names.values()) == ["slow"]


def test_jobs_arex_or_the_job_list_do_not_know():
    states, _, unknown = parse_arcstat(data("arcstat_cleaned_on_ce.txt"))  # "404 Job not found" (short ids)
    assert states == {} and unknown == {"LhsLDmsp1sAoOSAtDmABFKDmABFKDmABFKDmCRLKDmJBFKDmJL0pOm",
                                        "4bWNDmzp1sAoOSAtDmABFKDmABFKDmABFKDmCRLKDmKBFKDmNw1fqm"}
    states, _, unknown = parse_arcstat(data("arcstat_not_in_job_list.txt"))
    assert states == {} and unknown == {"NoSuchJobAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}
    assert not UNREACHABLE.search(data("arcstat_cleaned_on_ce.txt"))


def test_a_ce_that_is_down_is_not_a_job_that_is_gone():
    output = data("arcstat_ce_down.txt")
    states, _, unknown = parse_arcstat(output)
    assert states == {} and unknown == set() and UNREACHABLE.search(output)


# --- xRSL --------------------------------------------------------------------------


def test_xrsl_strings_are_literals():
    assert xrsl_string('a"b$(HOME)', "x") == '"a""b$(HOME)"'
    with pytest.raises(JobFileError, match="line break"):
        xrsl_string("a\nb", "an argument")


def context(tmp_path, **extra) -> JobContext:
    bundle = tmp_path / "pylaw-bundle-abc.tar.gz"
    bundle.write_text("x")
    config = tmp_path / "jobs" / "pylaw_luigi.cfg"
    config.parent.mkdir(exist_ok=True)
    config.write_text("[core]\n")
    return JobContext(command=["python", "-m", "pylaw.job.branch", "--tag=it's \"q\" $(X)"],
                      job_dir=str(tmp_path / "jobs"), task_name="Square", shared_filesystem=False,
                      bundle=str(bundle), luigi_config=str(config), walltime=3601, **extra)


def test_one_multi_job_file_per_batch_with_everything_a_job_needs(tmp_path):
    factory = ARCJobFileFactory(ARCSettings(endpoints=("https://ce.example.org/arex",), memory=2048, queue="grid",
                                            runtime_environments=("ENV/PYTHON",), xrsl_options=(("count", "2"),)))
    requests = [JobRequest(str(i), (2 * i, 2 * i + 1), attempt=1 + (i == 2)) for i in range(5)]
    batches = factory.render(requests, context(tmp_path), per_file=3)
    assert [len(b.requests) for b in batches] == [3, 2]
    text = data(batches[0].path)
    assert text.count("(&") == 3 and "\n+(&" in text
    name = batches[0].name
    assert re.fullmatch(r"pylaw_Square_[0-9a-f]{12}", name)
    for index in range(3):
        assert f'(jobname="{name}_{index}")' in text
    assert '(executable="pylaw_wrapper.sh")' in text
    assert '"--tag=it\'s ""q"" $(X)"' in text  # the argument reaches the task verbatim
    assert f'("pylaw-bundle-abc.tar.gz" "{tmp_path}/pylaw-bundle-abc.tar.gz")' in text
    assert f'("pylaw_luigi.cfg" "{tmp_path}/jobs/pylaw_luigi.cfg")' in text
    assert '(outputFiles=("logs/" ""))' in text and '("PYLAW_LOG_DIR" "logs")' in text
    assert '("PYLAW_BRANCHES" "4 5")("PYLAW_JOB_KEY" "2")' not in text  # one relation list per variable
    assert '("PYLAW_JOB_KEY" "2") ("PYLAW_ATTEMPT" "2") ("PYLAW_BRANCHES" "4 5")' in text
    assert '(walltime="3601 seconds")(memory="2048")(queue="grid")(runTimeEnvironment="ENV/PYTHON")' in text
    assert '(count="2")' in text


def test_settings_are_checked(tmp_path):
    for settings, words in [(ARCSettings(), "at least one endpoint"),
                            (ARCSettings(endpoints=("gsiftp://old.example.org",)), "not an https"),
                            (ARCSettings(endpoints=("https://ce/arex",), queue="a b"), "queue 'a b'"),
                            (ARCSettings(endpoints=("https://ce/arex",), xrsl_options=(("executable", "x"),)),
                             "pylaw writes itself")]:
        with pytest.raises(JobFileError, match=re.escape(words)):
            ARCJobFileFactory(settings).render([JobRequest("0", (0,))], context(tmp_path), per_file=1)
    assert parse_xrsl_options("count = 4\n# comment\nrerun = 2\n") == (("count", "4"), ("rerun", "2"))
    with pytest.raises(JobFileError):
        parse_xrsl_options("count 4")


@pytest.mark.parametrize("text,mb", [("", 0), ("2048", 2048), ("2G", 2048), ("500M", 500), ("1.5GB", 1536)])
def test_memory_in_megabytes(text, mb):
    assert megabytes(text) == mb


def test_memory_with_a_bad_unit():
    with pytest.raises(ValueError, match="2X"):
        megabytes("2X")
