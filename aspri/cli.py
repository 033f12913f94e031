"""The ``aspri`` command: ``up | whatsapp | cron | scheduler | engine | mcp | health | link``.

Each sub-command imports its part lazily, so ``aspri mcp`` (spawned per engine worker) does not
pay for the web frameworks it does not use.
"""

from __future__ import annotations

import argparse
import logging
import sys

from aspri import apikey
from aspri.config import ConfigError, Settings, load_env_file
from aspri.telemetry.logs import setup_logging
from aspri.telemetry.tracing import TracingConfigError, setup_tracing

KEYED = ("up", "whatsapp", "cron", "engine", "mcp", "link")
"""The commands that serve or call the APIs: they read (or create) the API key at start."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aspri", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole assistant: Valkey, gateways, scheduler, engine")
    sub.add_parser("whatsapp", help="the WhatsApp gateway (REST API and channel engine)")
    sub.add_parser("cron", help="the cron gateway (REST API for jobs)")
    sub.add_parser("scheduler", help="the cron scheduler agent (fires due jobs)")
    sub.add_parser("engine", help="an AI engine worker in consumer group ai-engine")
    mcp = sub.add_parser("mcp", help="the MCP server (stdio by default)")
    mcp.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    health = sub.add_parser("health", help="exit 0 when a service works (container checks)")
    health.add_argument("service", choices=["whatsapp", "cron", "engine", "scheduler"])
    health.add_argument("--name", help="the instance (its CONSUMER_NAME); default: any")
    sub.add_parser("link", help="print a new one-time sign-in link for the web chat")
    return parser


def _link(settings: Settings) -> int:
    key = apikey.effective(settings)
    base = f"http://127.0.0.1:{settings.whatsapp_port}"
    if key is None:
        print(f"{base}/chat  (ASPRI_API_KEY=off: no sign-in)")
    else:
        print(f"{base}/chat/login?token={apikey.login_token(key)}")
        print(f"valid once, for {apikey.LOGIN_TTL_S // 60} minutes", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        load_env_file()
        settings = Settings.from_env()
        if args.command in KEYED:
            settings = apikey.resolved(settings)
    except ConfigError as exc:
        print(f"aspri: configuration error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"aspri: cannot read or create the API key file: {exc}", file=sys.stderr)
        return 2
    if args.command == "health":
        from aspri.health_check import main as check

        return check(settings, args.service, args.name)
    if args.command == "link":
        return _link(settings)
    if args.command == "up":  # a taken port stops `up` before anything is imported or started
        from aspri.ports import busy_ports, port_message

        if busy := busy_ports(settings):
            print(port_message(busy), file=sys.stderr)
            return 1
    service = settings.service_name or f"aspri-{args.command}"
    setup_logging(service, settings.log_format, settings.log_level)
    try:
        setup_tracing(service)
    except TracingConfigError as exc:
        print(f"aspri: configuration error: {exc}", file=sys.stderr)
        return 2
    if settings.api_key == apikey.OFF and args.command in ("up", "whatsapp", "cron", "mcp"):
        logging.getLogger("aspri").warning(
            "ASPRI_API_KEY=off: the APIs answer anyone who can reach them (development only)"
        )
    if args.command in ("engine", "scheduler") and settings.metrics_port is not None:
        from aspri.telemetry.metrics import serve_process_metrics

        serve_process_metrics(settings.host, settings.metrics_port)
    if args.command == "up":
        from aspri.up import main as run
    elif args.command == "whatsapp":
        from aspri.api.whatsapp.server import main as run
    elif args.command == "cron":
        from aspri.api.cronjob.server import main as run
    elif args.command == "scheduler":
        from aspri.agents.scheduler import main as run
    elif args.command == "engine":
        from aspri.agents.engine import main as run
    else:
        from aspri.mcp.server import main as mcp_main

        return mcp_main(settings, transport=args.transport)
    from aspri.streams.connect import StoreRefused  # loaded by every command already

    try:
        return run(settings)
    except StoreRefused as exc:  # wrong credentials: say which setting, never the password
        print(f"aspri {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
