"""The backup engine: no Airflow imports anywhere below this package (a test enforces it)."""
