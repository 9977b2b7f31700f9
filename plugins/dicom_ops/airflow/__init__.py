"""Thin Airflow adapters (hooks, operators, triggers, assets) over the domain core."""
