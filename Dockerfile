# dicom-ops image: Airflow 3 + the dicom_ops package, installed from the lock.
# One image for every role; docker-compose.yaml picks the command per service.
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
EXPOSE 8080 11112
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["dicom-ops", "--help"]
