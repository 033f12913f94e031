"""The ``aspri`` command: ``up | whatsapp | cron | scheduler | engine | mcp | health``.

Each sub-command imports its part lazily, so ``aspri mcp`` (spawned per engine worker) does not
pay for the web frameworks it does not use.
"""

from __future__ import annotations

import argparse
import sys

from aspri.config import ConfigError, Settings
from aspri.telemetry.logs import setup_logging
from aspri.telemetry.tracing import TracingConfigError, setup_tracing


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"aspri: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "health":
        from aspri.health_check import main as check

        return check(settings, args.service, args.name)
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
