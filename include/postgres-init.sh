#!/bin/bash
# Run once by the postgres container on an empty volume: one database per concern,
# both roles with the container's POSTGRES_PASSWORD.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
CREATE ROLE airflow LOGIN PASSWORD '${POSTGRES_PASSWORD}';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE dicom_ops LOGIN PASSWORD '${POSTGRES_PASSWORD}';
CREATE DATABASE dicom_ops OWNER dicom_ops;
SQL
