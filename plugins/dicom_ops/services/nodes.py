"""DICOM destinations for ``dicom-ops services run``, outside Airflow: the connection's
``AIRFLOW_CONN_<ID>`` environment variable (``dicom://host:port/CALLED_AE`` or Airflow's
JSON form), the same way Airflow itself reads connections from the environment. Inside
Airflow tasks the ``DicomNodeHook`` reads every kind of connection store instead."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

from dicom_ops.delivery.cstore import DicomNode


def node_from_environment(conn_id: str, environ: Mapping[str, str] | None = None) -> DicomNode:
    environ = os.environ if environ is None else environ
    variable = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = environ.get(variable, "").strip()
    if not raw:
        raise ValueError(f"connection {conn_id!r}: {variable} is not set (outside Airflow, "
                         "`services run` reads DICOM connections from the environment)")
    if raw.startswith("{"):
        try:
            fields = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError(f"connection {conn_id!r}: {variable} is not valid JSON") from None
        host, port, aet = fields.get("host"), fields.get("port"), fields.get("schema")
    else:
        parts = urlsplit(raw)
        host, port, aet = parts.hostname, parts.port, unquote(parts.path.lstrip("/"))
    if not host or not port or not aet:
        raise ValueError(f"connection {conn_id!r} lacks host, port or schema (called AE title)")
    return DicomNode(str(host), int(port), str(aet))
