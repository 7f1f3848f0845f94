"""Tests never reach for a cloud address (issue 11): the EC2 metadata service is off in the
test process, in every CLI process a test starts and in the sandbox's tools' environment."""

from __future__ import annotations

import os

from amprenta_backup.sandbox.s3server import MotoServer
from tests.support.cli import CliRunner


def test_the_metadata_service_is_off_for_tests_and_the_processes_they_start() -> None:
    assert os.environ["AWS_EC2_METADATA_DISABLED"] == "true"  # set by tests/conftest.py
    assert CliRunner({}).environment()["AWS_EC2_METADATA_DISABLED"] == "true"
    assert MotoServer().env()["AWS_EC2_METADATA_DISABLED"] == "true"
