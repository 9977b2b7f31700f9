"""TLS for the associations we open (C-ECHO, C-FIND, C-MOVE/C-GET, C-STORE): one
client-side ``ssl.SSLContext`` built from a node's options, the way every outgoing
association gets it.

The options come from the node's Airflow connection extra (``tls_ca_file``,
``tls_cert_file``, ``tls_key_file``, ``tls_verify``); ``dicom_ops.airflow.hooks``
reads them, this module only builds the context. TLS 1.2 or later, as the listener.
``tls_verify`` false still encrypts but checks neither the chain nor the host name:
for a test PACS with a self-made certificate, never for production.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


class TlsConfigError(ValueError):
    """The TLS options of a node cannot be used; the message names the option."""


@dataclass(frozen=True)
class ClientTls:
    """How we speak TLS to one node. ``ca_file`` empty: the system's trusted CAs."""

    ca_file: Path | None = None
    cert_file: Path | None = None  # our client certificate, for a node that asks for one
    key_file: Path | None = None
    verify: bool = True

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise TlsConfigError("tls_cert_file and tls_key_file must be given together")

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            if self.ca_file:
                context.load_verify_locations(cafile=str(self.ca_file))
            if self.cert_file:
                context.load_cert_chain(str(self.cert_file), str(self.key_file))
        except (OSError, ssl.SSLError) as exc:
            which = "tls_ca_file" if self.ca_file and not _readable(self.ca_file) else (
                "tls_cert_file/tls_key_file")
            raise TlsConfigError(f"cannot load {which} ({type(exc).__name__}: "
                                 f"{getattr(exc, 'strerror', None) or exc})") from exc
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def _readable(path: Path) -> bool:
    try:
        return path.is_file() and bool(path.read_bytes())
    except OSError:
        return False


def tls_from_extra(extra: dict[str, Any], where: str) -> ClientTls | None:
    """``ClientTls`` from a connection extra, or ``None`` when it asks for no TLS.

    TLS is on when ``tls`` is true or any ``tls_*`` file is given. ``where`` names the
    connection in errors.
    """
    files = {key: extra.get(key) for key in ("tls_ca_file", "tls_cert_file", "tls_key_file")}
    wanted = parse_flag(extra.get("tls", False), "tls", where) or any(files.values())
    if not wanted:
        return None
    for key, value in files.items():
        if value and not isinstance(value, str):
            raise TlsConfigError(f"{where}: extra {key!r} must be a file path")
    try:
        return ClientTls(
            ca_file=Path(files["tls_ca_file"]) if files["tls_ca_file"] else None,
            cert_file=Path(files["tls_cert_file"]) if files["tls_cert_file"] else None,
            key_file=Path(files["tls_key_file"]) if files["tls_key_file"] else None,
            verify=parse_flag(extra.get("tls_verify", True), "tls_verify", where),
        )
    except TlsConfigError as exc:
        raise TlsConfigError(f"{where}: {exc}") from exc


def parse_flag(value: Any, key: str, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in TRUE_WORDS:
        return True
    if str(value).strip().lower() in FALSE_WORDS:
        return False
    raise TlsConfigError(f"{where}: extra {key!r} must be true or false, not {value!r}")
