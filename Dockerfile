# dicom-ops image: Airflow 3 (with the Celery provider) + the dicom_ops package, installed
# from the lock. One image for every role of the distributed deployment: api-server,
# scheduler, dag-processor, triggerer, Celery worker (`dicom-ops worker`), listener,
# flower, emulator; docker-compose.yaml picks the command per service, the same commands
# `dicom-ops cluster` runs (plugins/dicom_ops/cluster/deployment.py).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/dicom-ops/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/dicom-ops/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    DICOM_OPS_DATA_ROOT=/data

# dcmtk: echoscu/storescu for operators checking DICOM links from inside the container.
# The data root (/data) is the shared volume: one filesystem for the listener and every
# worker (README, "Shared storage").
RUN apt-get update \
 && apt-get install -y --no-install-recommends dcmtk tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 50000 --home-dir /opt/airflow airflow \
 && mkdir -p /data /opt/dicom-ops \
 && chown airflow /data

WORKDIR /opt/dicom-ops
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY plugins ./plugins
COPY dags ./dags
COPY include ./include
RUN pip install --no-cache-dir --no-deps -e .

USER airflow
VOLUME ["/data"]
# 8080 API server/UI, 11112 DICOM listener, 8793 a worker's task logs, 5555 Flower
EXPOSE 8080 11112 8793 5555
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["dicom-ops", "--help"]
