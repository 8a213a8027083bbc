"""Airflow plugins the provider registers (the spend page, Airflow 3)."""
