"""Apache Airflow provider for PatSnap's Open Platform."""

__version__ = "0.1.0"
