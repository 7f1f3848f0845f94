# syntax=docker/dockerfile:1
# Images for docker-compose.airflow.yml (docs/deployment.md):
#   airflow    Airflow 3 with amprenta-backup installed (pip, pinned by requirements.txt), its
#              DAG files in /opt/airflow/dags, and the PostgreSQL 14-18 client AND server
#              tools from the PGDG apt repository (pg_dump/pg_restore/pg_basebackup for every
#              supported server; initdb/pg_ctl/postgres for pitr_restore, pitr_drill, dr_drill)
#   source-db  PostgreSQL 16 with amprenta-wal in /opt/amprenta, for the sample source that
#              archives its WAL (archive_command = amprenta-wal push %p %f)
# Build: docker compose -f docker-compose.airflow.yml build
ARG AIRFLOW_BASE=apache/airflow:3.3.2-python3.11
ARG SOURCE_BASE=postgres:16.4-bookworm
ARG PG_MAJORS="14 15 16 17 18"

FROM ${AIRFLOW_BASE} AS airflow
ARG PG_MAJORS
USER root
# the server packages must not create a cluster of their own on install
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates curl gnupg; \
    install -d /usr/share/postgresql-common/pgdg /etc/postgresql-common; \
    curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
    . /etc/os-release; \
    echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] \
https://apt.postgresql.org/pub/repos/apt ${VERSION_CODENAME}-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf; \
    apt-get update; \
    for major in ${PG_MAJORS}; do pkgs="${pkgs:-} postgresql-${major}"; done; \
    apt-get install -y --no-install-recommends ${pkgs}; \
    apt-get clean; rm -rf /var/lib/apt/lists/*; \
    for major in ${PG_MAJORS}; do /usr/lib/postgresql/${major}/bin/pg_ctl --version; done
USER airflow
COPY --chown=airflow:0 pyproject.toml README.md requirements.txt /opt/amprenta/src/
COPY --chown=airflow:0 plugins /opt/amprenta/src/plugins
# plugins/amprenta_backup/dags links to ../../dags: the wheel's DAG files
COPY --chown=airflow:0 dags /opt/amprenta/src/dags
RUN set -eux; \
    rm -rf /opt/amprenta/src/plugins/*.egg-info; \
    pip install --no-cache-dir -c /opt/amprenta/src/requirements.txt \
        "apache-airflow==${AIRFLOW_VERSION}" "/opt/amprenta/src[airflow]"; \
    amprenta-backup --help >/dev/null; amprenta-wal --help >/dev/null; \
    amprenta-backup install-dags /opt/airflow/dags; \
    dirname "$(command -v amprenta-wal)" > /tmp/amprenta-bindir
# on every user's PATH (a restored server's restore_command runs amprenta-wal too)
USER root
RUN bindir="$(cat /tmp/amprenta-bindir)"; rm /tmp/amprenta-bindir; \
    ln -sf "$bindir/amprenta-backup" "$bindir/amprenta-wal" /usr/local/bin/
USER airflow

FROM ${SOURCE_BASE} AS source-db
RUN set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends python3-venv; \
    apt-get clean; rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md requirements.txt /opt/amprenta/src/
COPY plugins /opt/amprenta/src/plugins
RUN set -eux; \
    rm -rf /opt/amprenta/src/plugins/*.egg-info; \
    python3 -m venv /opt/amprenta; \
    /opt/amprenta/bin/pip install --no-cache-dir -c /opt/amprenta/src/requirements.txt \
        /opt/amprenta/src; \
    /opt/amprenta/bin/amprenta-wal --help >/dev/null; \
    install -d -o postgres -g postgres -m 700 /var/spool/amprenta-wal
