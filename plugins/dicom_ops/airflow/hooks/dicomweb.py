"""DICOMweb services as Airflow connections (type ``dicomweb``); the fields are read by
``dicom_ops.delivery.connections``, which says what each one means."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from dicom_ops.airflow.provider import (
    DICOMWEB_CONN_TYPE,
    DICOMWEB_HOOK_NAME,
    DICOMWEB_UI_FIELD_BEHAVIOUR,
)
from dicom_ops.delivery.connections import ConnectionFields, dicomweb_node
from dicom_ops.delivery.dicomweb import DicomWebNode


class DicomWebHook(BaseHook):
    conn_name_attr = "dicomweb_conn_id"
    conn_type = DICOMWEB_CONN_TYPE
    hook_name = DICOMWEB_HOOK_NAME

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {key: value.copy() for key, value in DICOMWEB_UI_FIELD_BEHAVIOUR.items()}

    def __init__(self, dicomweb_conn_id: str) -> None:
        super().__init__()
        self.dicomweb_conn_id = dicomweb_conn_id

    def get_node(self) -> DicomWebNode:
        connection = self.get_connection(self.dicomweb_conn_id)
        return dicomweb_node(ConnectionFields.of(self.dicomweb_conn_id, connection))
