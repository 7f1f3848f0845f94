"""The engine's refusals in each interface's words: the CLI's options, a form's labels
(issue 13 point 2). The messages are the engine's own, raised by its request checks."""

from __future__ import annotations

import pytest

from amprenta_backup.cli.output import OPTION_WORDS
from amprenta_backup.core.errors import FORM_ASSIGN, ConfigError, reword
from amprenta_backup.core.recovery.plan import RecoveryRequest
from amprenta_backup.core.restore.request import RestoreRequest

FORM = {"server_conn_id": "New server connection", "parallel": "Databases at once",
        "jobs": "Parallel jobs", "source_target": "Backup target"}


def _refusal(make: object, **fields: object) -> str:
    with pytest.raises(ConfigError) as refused:
        make(**fields)  # type: ignore[operator]
    return str(refused.value)


def test_a_missing_or_bad_field_is_named_as_each_interface_names_it() -> None:
    server = _refusal(RecoveryRequest.from_mapping, data={})
    assert reword(server, OPTION_WORDS) == (
        "the recovery needs the connection of the new server: give --server")
    assert reword(server, FORM, FORM_ASSIGN) == (
        "the recovery needs the connection of the new server: give New server connection")
    parallel = _refusal(RecoveryRequest.from_mapping, data={"server_conn_id": "pg_new",
                                                            "parallel": 0})
    assert reword(parallel, OPTION_WORDS).startswith("--parallel 0 is out of range; ")
    assert reword(parallel, FORM, FORM_ASSIGN).startswith("Databases at once: 0 is out of ")
    latest = _refusal(RestoreRequest.build, backup_id="latest", database="x",
                      targets=[_target("pg_a"), _target("pg_b")])
    assert reword(latest, OPTION_WORDS).endswith(": give --from, one of pg_a, pg_b")
    assert reword(latest, FORM, FORM_ASSIGN).endswith(": give Backup target, one of pg_a, pg_b")
    for message in (reword(server, OPTION_WORDS), reword(latest, FORM, FORM_ASSIGN)):
        assert "_" not in message.replace("pg_", "")


def _target(name: str) -> object:
    from amprenta_backup.core.settings import BackupTarget

    return BackupTarget.parse(name)
