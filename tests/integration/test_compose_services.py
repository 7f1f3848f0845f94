"""Parts of docker-compose.airflow.yml run here without a Docker engine: the ``s3`` service's
own command (the SeaweedFS version its image pins)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from amprenta_backup.core.connections import s3_client_kwargs
from amprenta_backup.sandbox.seaweed import SeaweedServer
from tests.support.compose import as_run, env_example, model, services


class ComposeS3(SeaweedServer):
    """The ``s3`` service's command and identity config, on free ports and a temp folder."""

    def __init__(self) -> None:
        super().__init__(start_timeout=30)
        aws = env_example()["AIRFLOW_CONN_AWS_DEFAULT"]
        kwargs = s3_client_kwargs("aws_default", {"AIRFLOW_CONN_AWS_DEFAULT": aws})
        self.access_key = kwargs["aws_access_key_id"]
        self.secret_key = kwargs["aws_secret_access_key"]

    def server_args(self, workdir: Path) -> list[str]:
        config = workdir / "s3.json"
        config.write_text(as_run(model()["configs"]["seaweedfs-s3"]["content"]))
        (workdir / "data").mkdir()
        return [*services()["s3"]["command"], f"-dir={workdir / 'data'}",
                f"-s3.config={config}", *self.port_args(workdir)]


def test_the_s3_service_answers_its_healthcheck_and_takes_the_connections_keys() -> None:
    check = services()["s3"]["healthcheck"]["test"]
    assert check[:2] == ["CMD", "wget"] and check[-1].startswith("http://127.0.0.1:8333/")
    assert "-s3.port=8333" in services()["s3"]["command"]
    with ComposeS3() as s3:  # its start writes an object with the .env.example keys
        url = check[-1].replace(":8333/", f":{s3.port}/")
        with urllib.request.urlopen(url, timeout=5) as answer:
            assert answer.status == 200
        s3.client().create_bucket(Bucket="amprenta-backups")
        assert [b["Name"] for b in s3.client().list_buckets()["Buckets"]] == [
            "amprenta-backups"]
