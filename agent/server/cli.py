"""``evolvent serve``: the REST service under uvicorn."""

from __future__ import annotations

import copy
import errno
import ipaddress
import logging.config
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer


def serve(
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (loopback unless you need more).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8080,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML or YAML settings file (also EVOLVENT_CONFIG)."),
    ] = None,
    insecure_no_auth: Annotated[
        bool,
        typer.Option(
            "--insecure-no-auth",
            help="Serve without API keys: every caller acts in namespace 'default'.",
        ),
    ] = False,
) -> None:
    """Serve the agent over HTTP (REST + server-sent events).

    API keys come from EVOLVENT_API_KEYS="KEY:NAMESPACE,..." or api_keys in the config file."""
    problem = _bind_problem(host, port)
    if problem is not None:  # before the stores are opened and the app is built
        typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(2)
    import uvicorn

    from agent.errors import EvolventError
    from agent.server.app import create_app
    from agent.server.config import load_serve_settings
    from agent.server.deps import ServerDeps

    try:
        settings = load_serve_settings(config, insecure_no_auth=insecure_no_auth or None)
        # Built before binding the port: a locked memory store or a missing key is one
        # line on stderr, not a half-started server.
        deps = ServerDeps.from_settings(settings)
    except EvolventError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if insecure_no_auth and not _is_loopback(host):
        typer.echo(
            f"warning: serving WITHOUT authentication on {host}: anyone who can reach it can "
            "run the agent and read or delete its memory",
            err=True,
        )
    logging_config = log_config()
    logging.config.dictConfig(logging_config)  # what the app logs as it is made, too
    try:
        uvicorn.run(
            create_app(deps),
            host=host,
            port=port,
            log_level="info",
            log_config=logging_config,
            access_log=False,
        )
    finally:
        deps.close()


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with the server's own messages (runs queued, started and ended,
    errors) on the same handler and in the same format, from INFO up."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["agent"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


def _bind_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (None: it can), found by binding a
    socket as uvicorn will and closing it again."""
    if not host.strip():
        return "--host must not be blank (127.0.0.1 for this machine, 0.0.0.0 for every interface)"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"cannot resolve --host {host!r}: {e.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return f"port {port} is in use on {host}; pick another --port (0: a free one)"
            return f"cannot listen on {host}:{port}: {e.strerror or e}"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main() -> None:
    """``python -m agent.server``: the same command without the ``evolvent`` CLI."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(serve)
    app(sys.argv[1:], prog_name="python -m agent.server")
