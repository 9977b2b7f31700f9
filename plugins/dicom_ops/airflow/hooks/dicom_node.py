"""DICOM nodes as Airflow connections: host, port, and the called AE title in the
connection's schema field (e.g. ``dicom://10.1.2.3:104/ECLIPSE_STORE``); TLS options in
the extra (``tls``, ``tls_ca_file``, ``tls_cert_file``, ``tls_key_file``, ``tls_verify``).
The same kind of connection serves delivery destinations and PACS nodes.

The connection type, its name and its form's labels come from ``dicom_ops.airflow.
provider``, which Airflow reads to show the ``dicom`` type in the connection form.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from dicom_ops.airflow.provider import (
    DICOM_NODE_CONN_TYPE,
    DICOM_NODE_HOOK_NAME,
    DICOM_NODE_UI_FIELD_BEHAVIOUR,
)
from dicom_ops.delivery.connections import ConnectionFields, dicom_node, node
from dicom_ops.delivery.cstore import DicomNode
from dicom_ops.delivery.destinations import Destination


class DicomNodeHook(BaseHook):
    conn_name_attr = "dicom_conn_id"
    conn_type = DICOM_NODE_CONN_TYPE
    hook_name = DICOM_NODE_HOOK_NAME

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form: host and port as they are, schema as the called AE title."""
        return {key: value.copy() for key, value in DICOM_NODE_UI_FIELD_BEHAVIOUR.items()}

    def __init__(self, dicom_conn_id: str) -> None:
        super().__init__()
        self.dicom_conn_id = dicom_conn_id

    def get_node(self) -> DicomNode:
        connection = self.get_connection(self.dicom_conn_id)
        return dicom_node(ConnectionFields.of(self.dicom_conn_id, connection))


def fields_of(conn_id: str) -> ConnectionFields:
    """The fields of an Airflow connection, for ``dicom_ops.delivery.connections``."""
    return ConnectionFields.of(conn_id, BaseHook.get_connection(conn_id))


def destination(conn_id: str) -> Destination:
    """The delivery destination an Airflow connection describes: a DICOM node
    (``dicom``, C-STORE) or a DICOMweb service (``dicomweb``, STOW-RS)."""
    return node(fields_of(conn_id))
