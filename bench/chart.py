#!/usr/bin/env python3
"""Draws the benchmark chart (SVG, no dependencies) from bench/results/latest.json.

  chart.py RESULTS.json OUT.svg

One group of horizontal bars per scenario: Gatehouse on SQLite, Gatehouse on PostgreSQL +
Redis, the peer, and the relevant ceiling, on a logarithmic requests-per-second axis.
"""

from __future__ import annotations

import json
import math
import os
import sys
from html import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import PEER_OF, ceiling_of, first_peer_rows  # noqa: E402

COLOURS = {"sqlite": "#2f5bea", "postgres": "#7b3fe4", "peer": "#e4843f", "ceiling": "#9aa0a6"}
LABELS = {"sqlite": "Gatehouse (SQLite)", "postgres": "Gatehouse (PostgreSQL + Redis)",
          "peer": "peer", "ceiling": "relevant ceiling"}


def main() -> int:
    source, target = sys.argv[1], sys.argv[2]
    with open(source) as handle:
        data = json.load(handle)
    rows, ceilings = data["rows"], data["ceilings"]
    peers = first_peer_rows(rows)

    groups: list[tuple[str, list[tuple[str, str, float]]]] = []
    order: list[str] = []
    titles: dict[str, str] = {}
    for row in rows:
        if (row["kind"] == "gatehouse" and row.get("variant") != "scale"
                and row["scenario"] not in order):
            order.append(row["scenario"])
            titles[row["scenario"]] = row["title"]
    for scenario in order:
        bars = []
        for row in rows:
            if row["kind"] == "gatehouse" and row["scenario"] == scenario:
                bars.append((row["variant"], LABELS[row["variant"]], row["rps"]))
        peer_key = PEER_OF.get(scenario)
        if peer_key and peer_key in peers:
            bars.append(("peer", f"{peers[peer_key]['server']}", peers[peer_key]["rps"]))
        bound = ceiling_of(scenario, ceilings)
        if bound:
            bars.append(("ceiling", f"ceiling: {bound[1]}", bound[0]))
        groups.append((titles[scenario], bars))

    values = [v for _, bars in groups for _, _, v in bars if v > 0]
    if not values:
        values = [1.0]
    low = 10 ** math.floor(math.log10(min(values)))
    high = 10 ** math.ceil(math.log10(max(values)))
    left, width, bar_h, gap, top = 330, 560, 13, 14, 70
    height = top + sum(len(b) * bar_h + gap for _, b in groups) + 40

    def x(value: float) -> float:
        value = max(value, low)
        return left + width * (math.log10(value) - math.log10(low)) / (
            math.log10(high) - math.log10(low))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 110}" '
           f'height="{height}" font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="20" font-size="15" font-weight="bold">Gatehouse, peers and '
           f'ceilings — requests (or operations) per second, log scale</text>',
           f'<text x="10" y="38" fill="#555">{escape(data["machine"]["cpu"])}, '
           f'{data["machine"]["cores"]} cores; wrk -t{data["args"]["threads"]} '
           f'-c{data["args"]["connections"]}, {data["args"]["duration"]} s per scenario</text>']
    legend_x = 10
    for key in ("sqlite", "postgres", "peer", "ceiling"):
        out.append(f'<rect x="{legend_x}" y="48" width="10" height="10" fill="{COLOURS[key]}"/>')
        out.append(f'<text x="{legend_x + 14}" y="57">{escape(LABELS[key])}</text>')
        legend_x += 30 + 7 * len(LABELS[key])
    decade = low
    while decade <= high:
        gx = x(decade)
        out.append(f'<line x1="{gx:.1f}" y1="{top - 6}" x2="{gx:.1f}" y2="{height - 30}" '
                   'stroke="#ddd"/>')
        out.append(f'<text x="{gx:.1f}" y="{height - 16}" text-anchor="middle" fill="#555">'
                   f'{decade:g}</text>')
        decade *= 10
    y = top
    for title, bars in groups:
        out.append(f'<text x="{left - 8}" y="{y + bar_h * len(bars) / 2 + 4:.1f}" '
                   f'text-anchor="end">{escape(title)}</text>')
        for kind, label, value in bars:
            out.append(f'<rect x="{left}" y="{y}" width="{max(1.0, x(value) - left):.1f}" '
                       f'height="{bar_h - 2}" fill="{COLOURS[kind]}"><title>{escape(label)}: '
                       f'{value:,.1f}/s</title></rect>')
            out.append(f'<text x="{x(value) + 4:.1f}" y="{y + bar_h - 3}" fill="#333">'
                       + (f'{value:,.0f}' if value >= 100 else f'{value:.1f}') + '</text>')
            y += bar_h
        y += gap
    out.append("</svg>")
    with open(target, "w") as handle:
        handle.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
