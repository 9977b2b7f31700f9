"""DICOM destinations as Airflow connections: host, port, and the called AE title in
the connection's schema field (e.g. ``dicom://10.1.2.3:104/ECLIPSE_STORE``).

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
from dicom_ops.delivery.cstore import DicomNode


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
        missing = [name for name, value in (("host", connection.host), ("port", connection.port),
                                            ("schema (called AE title)", connection.schema))
                   if not value]
        if missing:
            raise ValueError(f"Airflow connection {self.dicom_conn_id!r} lacks "
                             f"{', '.join(missing)}")
        return DicomNode(connection.host, int(connection.port), connection.schema)
