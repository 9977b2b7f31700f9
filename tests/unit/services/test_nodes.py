"""`services run` outside Airflow reads DICOM connections from AIRFLOW_CONN_* like Airflow."""

from __future__ import annotations

import pytest
from dicom_ops.services.nodes import node_from_environment


def test_uri_and_json_connections_give_the_node():
    env = {"AIRFLOW_CONN_ARCHIVE": "dicom://10.1.2.9:104/ARCHIVE",
           "AIRFLOW_CONN_PACS": '{"conn_type": "dicom", "host": "pacs", "port": 11112, '
                                '"schema": "PACS_AE"}'}

    assert str(node_from_environment("archive", env)) == "ARCHIVE@10.1.2.9:104"
    assert str(node_from_environment("pacs", env)) == "PACS_AE@pacs:11112"


def test_a_missing_or_incomplete_connection_names_it():
    with pytest.raises(ValueError, match="connection 'archive': AIRFLOW_CONN_ARCHIVE is not set"):
        node_from_environment("archive", {})
    with pytest.raises(ValueError, match="connection 'tps' lacks host, port or schema"):
        node_from_environment("tps", {"AIRFLOW_CONN_TPS": "dicom://tps:104"})
