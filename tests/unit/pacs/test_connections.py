"""Reading a PACS or destination from its Airflow connection fields (the JSON and URI
forms Airflow uses), with errors that name the connection."""

from __future__ import annotations

import json

import pytest
from dicom_ops.delivery.connections import ConnectionFields, node
from dicom_ops.delivery.cstore import DicomNode
from dicom_ops.delivery.dicomweb import DicomWebNode
from dicom_ops.delivery.tls import TlsConfigError
from dicom_ops.pacs.source import source_from_fields


def test_a_dicom_uri_with_tls_options_gives_a_tls_node(tmp_path):
    ca = tmp_path / "ca.pem"
    fields = ConnectionFields.parse("pacs", f"dicom://10.1.2.3:104/PACS_AE?tls_ca_file={ca}"
                                            "&retrieve=get")

    source = source_from_fields(fields)

    assert isinstance(source.node, DicomNode)
    assert str(source.node) == "PACS_AE@10.1.2.3:104"
    assert source.node.tls is not None and source.node.tls.ca_file == ca
    assert (source.retrieve, source.method) == ("get", "C-GET")


def test_a_dicomweb_connection_with_a_token_authenticates_with_a_bearer_header():
    fields = ConnectionFields.parse("pacs_web", json.dumps({
        "conn_type": "dicomweb", "host": "pacs.example", "port": 8042, "schema": "https",
        "password": "tok-123", "extra": {"path": "/dicom-web/", "verify": False}}))

    web = node(fields)

    assert isinstance(web, DicomWebNode)
    assert web.url == "https://pacs.example:8042/dicom-web"
    session = web.client()._session
    assert session.headers["Authorization"] == "Bearer tok-123"
    assert session.auth is None and session.verify is False


def test_a_dicomweb_connection_with_login_uses_basic_auth():
    web = node(ConnectionFields("w", "dicomweb", "h", None, "http", "user", "pw", {}))
    assert web.client()._session.auth == ("user", "pw")
    assert "Authorization" not in web.client()._session.headers


@pytest.mark.parametrize(("fields", "message"), [
    (ConnectionFields("pacs", "dicom", "10.1.2.3", 104, None), "'pacs' lacks schema"),
    (ConnectionFields("pacs", "http", "h", 80, "X"), "'pacs' is of type 'http'"),
    (ConnectionFields("pacs", "dicom", "h", 104, "AE", extra={"retrieve": "push"}),
     "extra 'retrieve' must be 'move' or 'get'"),
    (ConnectionFields("pacs", "dicom", "h", 104, "AE", extra={"tls_cert_file": "/c.pem"}),
     "'pacs': tls_cert_file and tls_key_file must be given together"),
    (ConnectionFields("pacs", "dicom", "h", 104, "AE", extra={"tls": "maybe"}),
     "extra 'tls' must be true or false"),
])
def test_a_bad_connection_is_refused_naming_it(fields, message):
    with pytest.raises((ValueError, TlsConfigError), match=message):
        source_from_fields(fields)


def test_a_missing_ca_file_is_named_when_the_association_is_prepared(tmp_path):
    fields = ConnectionFields("pacs", "dicom", "h", 104, "AE",
                              extra={"tls_ca_file": str(tmp_path / "absent.pem")})
    with pytest.raises(TlsConfigError, match="cannot load tls_ca_file"):
        node(fields).tls_args()
