"""The Airflow plugin: a FastAPI app under the api-server (JSON API, metrics, downloads) and
the "Backups" dashboard page in Airflow's navigation."""
