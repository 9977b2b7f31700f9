"""`dicom-ops emulator`: run the local DRAW server emulator (REST API, segmentation, faults)."""

from __future__ import annotations

import argparse
import logging
import socket
from pathlib import Path

from dicom_ops.cli import CommandError
from dicom_ops.config import get_settings, parse_size
from dicom_ops.devtools.emulator.faults import FAULTS, FaultError, parse_fault_flag

log = logging.getLogger("dicom_ops.devtools.emulator")


def register(subparsers: argparse._SubParsersAction) -> None:
    fault_help = "; ".join(f"{spec.name}: {spec.help}" for spec in FAULTS)
    parser = subparsers.add_parser(
        "emulator", help="run the DRAW server emulator",
        description="A local DRAW server: the REST API with a real (simple) segmentation, "
                    "valid RTSTRUCTs and switchable faults.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default DICOM_OPS_EMULATOR_PORT, 8123; 0 picks a free one)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="tasks, uploads and tokens (default <data root>/emulator)")
    parser.add_argument("--delay", type=float, default=2.0,
                        help="seconds a task stays PENDING before processing (2)")
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="up to this many extra seconds of delay, random per task (0)")
    parser.add_argument("--token", default=None,
                        help="the accepted access token (default: kept in <data-dir>/access_token)")
    parser.add_argument("--refresh-token", default=None,
                        help="the accepted refresh token (default: kept in "
                             "<data-dir>/refresh_token)")
    parser.add_argument("--token-lifetime", type=float, default=3600.0,
                        help="seconds an access token issued by a refresh stays valid (3600)")
    parser.add_argument("--keep-uploads", action="store_true",
                        help="keep every received zip and the task files after confirm")
    parser.add_argument("--max-unpacked-size", default="2GiB",
                        help="largest accepted upload, unpacked (2GiB)")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=VALUE",
                        help=f"switch a fault on (repeatable). {fault_help}")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    from dicom_ops.devtools.emulator.app import EmulatorConfig, create_app, resolve_tokens

    for name in ("delay", "jitter"):
        if getattr(args, name) < 0:
            raise CommandError(f"--{name} must be >= 0 seconds")
    if args.token_lifetime <= 0:
        raise CommandError("--token-lifetime must be > 0 seconds")
    try:
        max_unpacked = parse_size(args.max_unpacked_size)
    except ValueError:
        raise CommandError(f"--max-unpacked-size {args.max_unpacked_size!r} is not a size "
                           "such as 2GiB or 500MiB") from None
    faults: dict = {}
    for text in args.fault:
        try:
            faults.update(parse_fault_flag(text))
        except FaultError as exc:
            raise CommandError(f"--fault {text}: {exc}") from None
    port = get_settings().emulator_port if args.port is None else args.port
    data_dir = (args.data_dir or get_settings().data_root / "emulator").resolve()
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"--data-dir {data_dir}: {exc.strerror}") from None

    access_token, refresh_token = resolve_tokens(data_dir, args.token, args.refresh_token)
    config = EmulatorConfig(
        data_dir=data_dir, access_token=access_token, refresh_token=refresh_token,
        delay=args.delay, jitter=args.jitter, token_lifetime=args.token_lifetime,
        keep_uploads=args.keep_uploads, max_unpacked_bytes=max_unpacked, faults=faults)
    app = create_app(config)
    listener = _bind(args.host, port)
    actual_port = listener.getsockname()[1]
    log.info("access token: %s; refresh token: %s",
             "from --token" if args.token else f"kept in {data_dir / 'access_token'}",
             "from --refresh-token" if args.refresh_token
             else f"kept in {data_dir / 'refresh_token'}")
    if faults:
        log.info("faults on: %s", ", ".join(sorted(faults)))
    print(f"DRAW emulator listening on http://{_url_host(args.host)}:{actual_port} "
          f"(data in {data_dir})", flush=True)
    server = uvicorn.Server(uvicorn.Config(
        app, log_config=None, access_log=bool(getattr(args, "verbose", False)),
        lifespan="on", timeout_graceful_shutdown=5))
    server.run(sockets=[listener])
    return 0


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise CommandError(f"--host {host}: {exc.strerror}") from None
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as exc:
        listener.close()
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return listener


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
