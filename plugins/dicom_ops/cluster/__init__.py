"""The distributed deployment: Airflow's CeleryExecutor with Redis and PostgreSQL.

``deployment`` is the one description of it (the roles, their commands, the settings
every process shares), read both by ``dicom-ops cluster`` and by the test that holds
``docker-compose.yaml`` to it; ``infra`` runs the local PostgreSQL and Redis for the
native cluster; ``run`` prepares and supervises everything on one machine.
"""
