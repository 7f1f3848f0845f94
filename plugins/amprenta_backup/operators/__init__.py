"""Thin Airflow operators over the engine."""
