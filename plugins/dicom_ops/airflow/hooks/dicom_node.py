"""DICOM destinations as Airflow connections: host, port, and the called AE title in
the connection's schema field (e.g. ``dicom://10.1.2.3:104/ECLIPSE_STORE``)."""

from __future__ import annotations

from airflow.sdk import BaseHook

from dicom_ops.delivery.cstore import DicomNode


class DicomNodeHook(BaseHook):
    conn_name_attr = "dicom_conn_id"
    conn_type = "dicom"
    hook_name = "DICOM node (C-STORE destination)"

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
