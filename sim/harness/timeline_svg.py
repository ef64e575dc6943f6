"""An SVG picture of one run: who led and who held the tag, per node, with faults shaded."""

from __future__ import annotations

from html import escape

from tagjoin.sim.harness.recording import Recording

_ROW = 34
_LEFT = 110
_WIDTH = 900
_TOP = 40


def render_svg(rec: Recording) -> str:
    nodes = sorted({s.node for s in rec.leaders} | {n for s in rec.tags for n in s.holders})
    height = _TOP + _ROW * max(1, len(nodes)) + 50
    scale = _WIDTH / max(1, rec.duration_ms)

    def x(t: int) -> float:
        return _LEFT + t * scale

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_LEFT + _WIDTH + 20}" height="{height}" '
        'font-family="monospace" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{_LEFT}" y="18">seed {rec.seed} · {escape(rec.strategy)} · '
        '<tspan fill="#1f6feb">■ leader</tspan> <tspan fill="#e3a008">■ tag holder</tspan> '
        '<tspan fill="#d73a49">■ fault</tspan></text>',
    ]
    for fault in rec.faults:
        out.append(
            f'<rect x="{x(fault.start):.1f}" y="{_TOP - 8}" width="{max(2.0, (fault.end - fault.start) * scale):.1f}" '
            f'height="{_ROW * len(nodes) + 8}" fill="#d73a49" fill-opacity="0.15">'
            f"<title>{escape(fault.kind)} {escape(fault.target)}</title></rect>"
        )
        out.append(f'<text x="{x(fault.start):.1f}" y="{_TOP - 10}" fill="#d73a49">{escape(fault.kind)}</text>')
    row_of = {n: i for i, n in enumerate(nodes)}
    for node, i in row_of.items():
        out.append(f'<text x="4" y="{_TOP + i * _ROW + 16}">{escape(node)}</text>')
    for span in rec.leaders:
        end = rec.duration_ms if span.end is None else span.end
        y = _TOP + row_of[span.node] * _ROW
        out.append(
            f'<rect x="{x(span.start):.1f}" y="{y}" width="{max(1.0, (end - span.start) * scale):.1f}" height="12" '
            f'fill="#1f6feb"><title>{escape(span.node)} leads, term {span.term}</title></rect>'
        )
    for idx, sample in enumerate(rec.tags):
        end = rec.tags[idx + 1].t if idx + 1 < len(rec.tags) else rec.duration_ms
        for node, value in sample.holders.items():
            y = _TOP + row_of[node] * _ROW + 15
            out.append(
                f'<rect x="{x(sample.t):.1f}" y="{y}" width="{max(1.0, (end - sample.t) * scale):.1f}" height="10" '
                f'fill="#e3a008"><title>{escape(node)} tagged {escape(value)}</title></rect>'
            )
    axis_y = _TOP + _ROW * len(nodes) + 10
    out.append(f'<line x1="{_LEFT}" y1="{axis_y}" x2="{_LEFT + _WIDTH}" y2="{axis_y}" stroke="#555"/>')
    step = max(1000, (rec.duration_ms // 10) // 1000 * 1000)
    for t in range(0, rec.duration_ms + 1, step):
        out.append(f'<text x="{x(t):.1f}" y="{axis_y + 16}" text-anchor="middle">{t // 1000}s</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
