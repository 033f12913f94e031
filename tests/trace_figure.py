"""Draw a trace the test receiver got as a span tree (Jaeger's timeline view, without Jaeger).

    .venv/bin/python -m tests.trace_figure tests/artifacts/trace-message.json docs/trace-message.png

The JSON is what ``tests/e2e/test_traces.py`` saves of each trace it checked; the picture is an
HTML page rendered by Debian's chromium in headless mode.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.browser import CHROMIUM

COLOURS = {
    "aspri-whatsapp": "#25d366",
    "aspri-engine": "#5b8def",
    "aspri-mcp": "#f5a623",
    "aspri-cron": "#bd10e0",
    "aspri-scheduler": "#d0021b",
}
SHOWN = (
    "messaging.destination.name",
    "messaging.message.id",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.tool.name",
    "http.route",
    "aspri.channel",
)


def ordered(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Depth-first from the root, children by start time: (depth, span)."""
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s["parent_id"] if s["parent_id"] in ids else ""
        children.setdefault(parent, []).append(s)
    out: list[tuple[int, dict[str, Any]]] = []

    def walk(parent: str, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: x["start_ns"]):
            out.append((depth, s))
            walk(s["span_id"], depth + 1)

    walk("", 0)
    return out


def page(spans: list[dict[str, Any]], title: str) -> str:
    start = min(s["start_ns"] for s in spans)
    end = max(s["end_ns"] for s in spans)
    total = max(1, end - start)
    event_ids = {s["attributes"].get("aspri.event_id") for s in spans}
    rows = []
    for depth, s in ordered(spans):
        left = (s["start_ns"] - start) / total * 100
        width = max(0.3, (s["end_ns"] - s["start_ns"]) / total * 100)
        ms = (s["end_ns"] - s["start_ns"]) / 1e6
        colour = COLOURS.get(s["service"], "#999")
        details = " ".join(
            f"{k.split('.')[-1]}={html.escape(str(s['attributes'][k]))}"
            for k in SHOWN
            if k in s["attributes"]
        )
        rows.append(
            f'<tr><td class="name" style="padding-left:{8 + depth * 14}px">'
            f'<span class="svc" style="background:{colour}">{s["service"][6:]}</span> '
            f"{html.escape(s['name'])} <span class='kind'>{s['kind'].lower()}</span>"
            f"<div class='attrs'>{details}</div></td>"
            f'<td class="bar"><div style="margin-left:{left:.2f}%;width:{width:.2f}%;'
            f'background:{colour}"></div><span class="ms">{ms:.1f} ms</span></td></tr>'
        )
    services = sorted({s["service"] for s in spans})
    legend = " ".join(
        f'<span class="svc" style="background:{COLOURS.get(n, "#999")}">{n}</span>'
        for n in services
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ font: 13px/1.3 sans-serif; margin: 16px; color: #222; }}
h1 {{ font-size: 16px; margin: 0 0 4px; }}
.meta {{ color: #555; margin-bottom: 10px; }}
table {{ border-collapse: collapse; width: 100%; }}
td {{ border-top: 1px solid #eee; padding: 3px 6px; vertical-align: top; }}
td.name {{ width: 44%; white-space: nowrap; }}
td.bar {{ position: relative; }}
td.bar div {{ height: 12px; border-radius: 2px; margin-top: 3px; }}
.ms {{ font-size: 11px; color: #555; }}
.svc {{ color: #fff; border-radius: 3px; padding: 0 4px; font-size: 11px; }}
.kind {{ color: #888; font-size: 11px; }}
.attrs {{ color: #777; font-size: 10.5px; padding-left: 4px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<div class="meta">trace {spans[0]["trace_id"]} · {len(spans)} spans · {total / 1e6:.1f} ms ·
aspri.event_id = {html.escape(", ".join(sorted(str(e) for e in event_ids)))} on every span</div>
<div class="meta">{legend}</div>
<table>{"".join(rows)}</table></body></html>"""


def render(source: Path, target: Path, chromium: Path = CHROMIUM) -> None:
    data = json.loads(source.read_text())
    spans, title = data["spans"], data["title"]
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / "trace.html"
        index.write_text(page(spans, title))
        height = 150 + 40 * len(spans)
        subprocess.run(
            [
                str(chromium),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={target.resolve()}",
                f"--window-size=1400,{height}",
                index.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


if __name__ == "__main__":
    render(Path(sys.argv[1]), Path(sys.argv[2]))
