"""Nodes from connection fields: how a ``dicom`` or ``dicomweb`` Airflow connection
describes a DICOM node or a DICOMweb service. Plain fields in, so the hooks (Airflow)
and the CLI (``airflow connections get`` or ``AIRFLOW_CONN_*``) share one reading.

``dicom``: host, port, schema = called AE title; extra ``tls``, ``tls_ca_file``,
``tls_cert_file``, ``tls_key_file``, ``tls_verify``.
``dicomweb``: host, port, schema = ``http``/``https``, extra ``path`` (the service's path
prefix) and ``verify`` (true, false or a CA bundle file); login + password = HTTP basic
auth, a password without a login = a bearer token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from dicom_ops.delivery.cstore import DicomNode
from dicom_ops.delivery.dicomweb import DicomWebNode
from dicom_ops.delivery.tls import TlsConfigError, parse_flag, tls_from_extra

DICOM = "dicom"
DICOMWEB = "dicomweb"


@dataclass(frozen=True)
class ConnectionFields:
    conn_id: str
    conn_type: str | None = None
    host: str | None = None
    port: int | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, conn_id: str, connection: Any) -> ConnectionFields:
        """From an Airflow ``Connection`` (or anything with its attributes)."""
        return cls(conn_id, connection.conn_type, connection.host, connection.port,
                   connection.schema, connection.login, connection.password,
                   dict(connection.extra_dejson or {}))

    @classmethod
    def parse(cls, conn_id: str, text: str) -> ConnectionFields:
        """From Airflow's JSON form of a connection or its URI form
        (``dicom://10.1.2.3:104/PACS_AE?tls_ca_file=...``)."""
        text = text.strip()
        if text.startswith("{"):
            data = json.loads(text)
            extra = data.get("extra") or {}
            if isinstance(extra, str):
                extra = json.loads(extra) if extra.strip() else {}
            port = data.get("port")
            return cls(conn_id, data.get("conn_type"), data.get("host"),
                       int(port) if port not in (None, "") else None, data.get("schema"),
                       data.get("login"), data.get("password"), extra)
        parts = urlsplit(text)
        return cls(conn_id, parts.scheme.replace("-", "_") or None,
                   unquote(parts.hostname or "") or None, parts.port,
                   unquote(parts.path.lstrip("/")) or None,
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None,
                   dict(parse_qsl(parts.query)))

    @property
    def where(self) -> str:
        return f"Airflow connection {self.conn_id!r}"


def dicom_node(fields: ConnectionFields) -> DicomNode:
    missing = [name for name, value in (("host", fields.host), ("port", fields.port),
                                        ("schema (called AE title)", fields.schema))
               if not value]
    if missing:
        raise ValueError(f"{fields.where} lacks {', '.join(missing)}")
    return DicomNode(fields.host, int(fields.port), fields.schema,
                     tls=tls_from_extra(fields.extra, fields.where))


def dicomweb_node(fields: ConnectionFields) -> DicomWebNode:
    if not fields.host:
        raise ValueError(f"{fields.where} lacks host")
    scheme = (fields.schema or "http").lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"{fields.where}: schema must be http or https, not {scheme!r}")
    port = f":{fields.port}" if fields.port else ""
    path = "/" + str(fields.extra["path"]).strip("/") if fields.extra.get("path") else ""
    verify_raw = fields.extra.get("verify", True)
    try:
        verify: bool | str = parse_flag(verify_raw, "verify", fields.where)
    except TlsConfigError:
        verify = str(verify_raw)  # a CA bundle file
    login, password = fields.login or None, fields.password or None
    return DicomWebNode(url=f"{scheme}://{fields.host}{port}{path}", username=login,
                        password=password if login else None,
                        token=None if login else password, verify=verify, name=fields.conn_id)


def node(fields: ConnectionFields) -> DicomNode | DicomWebNode:
    """The node a connection describes, by its type (``dicom`` when it has none)."""
    if fields.conn_type == DICOMWEB:
        return dicomweb_node(fields)
    if fields.conn_type in (DICOM, None, ""):
        return dicom_node(fields)
    raise ValueError(f"{fields.where} is of type {fields.conn_type!r}: a destination or PACS "
                     f"is {DICOM!r} (DIMSE) or {DICOMWEB!r} (DICOMweb)")
