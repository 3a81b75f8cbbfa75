"""The submitter's Luigi config as shipped to jobs: raw values, credential-like keys dropped."""

from __future__ import annotations

import configparser
import logging

import luigi.configuration
import pytest

from pylaw.job.files import CONFIG_NAME, write_job_config


@pytest.fixture
def config():
    parser = luigi.configuration.get_config()
    added = [s for s in ("shiptest", "storage:shiptest") if not parser.has_section(s)]
    for section in added:
        parser.add_section(section)
    parser.set("shiptest", "api_token", "s3cr3t-token")
    parser.set("shiptest", "DB_Password", "s3cr3t-db")
    parser.set("shiptest", "from_env", "${HOME}/x")
    parser.set("shiptest", "plain", "value with spaces")
    parser.set("storage:shiptest", "base", "root://se.example.org//data")
    yield parser
    for section in added:
        parser.remove_section(section)


def test_effective_config_shipped_raw_without_credentials(config, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="pylaw.job"):
        path = write_job_config(str(tmp_path / "jobs"), "Demo")
    assert path == str(tmp_path / "jobs" / CONFIG_NAME)
    with open(path) as f:
        text = f.read()
    assert "s3cr3t" not in text and "api_token" not in text and "DB_Password" not in text
    shipped = configparser.RawConfigParser(interpolation=None)
    shipped.optionxform = str  # type: ignore[assignment,method-assign]
    shipped.read(path)
    assert shipped.get("shiptest", "from_env") == "${HOME}/x", "the submitter's environment is not resolved in"
    assert shipped.get("shiptest", "plain") == "value with spaces"
    assert shipped.get("storage:shiptest", "base") == "root://se.example.org//data"
    assert "[shiptest] api_token" in caplog.text and "[shiptest] DB_Password" in caplog.text
    assert "s3cr3t" not in caplog.text
    # what Luigi reads from it on the worker: the same storage element
    parser = luigi.configuration.LuigiConfigParser()
    parser.read([path])
    assert parser.get("storage:shiptest", "base") == "root://se.example.org//data"
