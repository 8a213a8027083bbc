"""Apache Airflow provider for PatSnap's Open Platform."""

__version__ = "0.2.0"
