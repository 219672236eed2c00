"""The per-layer chart of the HTML report: innermost modules (leaves of the call tree)
in forward order, coloured and banded by group, with a legend; the layers where nothing
was measured folded away.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pytest_actbudget.report.format import human
from pytest_actbudget.report.html_charts import escape as _e
from pytest_actbudget.report.html_charts import label_width
from pytest_actbudget.results import BudgetResult, LayerStats

__all__ = ["LAYER_METRICS", "layer_chart"]

#: The columns of the chart, each scaled to its own largest layer.
LAYER_METRICS: tuple[str, ...] = ("flops", "activations", "params")

_COLUMN = 190  # px per metric column
_BAR = 130  # px of the longest bar in a column (the rest holds its value)
_ROW = 16  # px per layer row
_BAND = 20  # px per group band (the row that names the group)
_NO_GROUP = "(no group)"


def layer_chart(result: BudgetResult, colours: Mapping[str, str]) -> str:
    """The chart, its group legend and the folded list of all-zero layers."""
    assert result.profile is not None
    leaves = [layer for layer in result.profile.layers if layer.leaf and layer.calls]
    shown = [layer for layer in leaves if any(layer.metric(m) for m in LAYER_METRICS)]
    zero = [layer for layer in leaves if not any(layer.metric(m) for m in LAYER_METRICS)]
    groups = [result.group_of(layer.path) or _NO_GROUP for layer in shown]
    parts = [
        '<figure class="chart layer-chart"><figcaption>Per layer, in forward order '
        '<span class="legend">(innermost modules, coloured by group; each column scaled to its '
        "largest layer)</span></figcaption>",
        _legend(result, colours, groups),
        _svg(shown, groups, colours),
        "</figure>",
        _folded(zero, result),
    ]
    return "".join(parts)


def _legend(result: BudgetResult, colours: Mapping[str, str], groups: Sequence[str]) -> str:
    names = [group.name for group in result.groups]
    names += [name for name in dict.fromkeys(groups) if name not in names]
    items = "".join(
        f'<li data-group="{_e(name)}"><span class="swatch {colours.get(name, "gnone")}">'
        f"</span>{_e(name)}</li>"
        for name in names
    )
    return f'<ul class="legend-keys">{items}</ul>'


def _label(layer: LayerStats) -> str:
    return f"{layer.path or '(root)'}  {layer.type}"


def _svg(shown: Sequence[LayerStats], groups: Sequence[str], colours: Mapping[str, str]) -> str:
    peaks = {m: max([1, *(layer.metric(m) for layer in shown)]) for m in LAYER_METRICS}
    label = label_width([_label(layer) for layer in shown] + [f"group {g}" for g in groups])
    bands = sum(1 for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g)
    height = 18 + _ROW * len(shown) + _BAND * bands + 4
    width = label + _COLUMN * len(LAYER_METRICS)
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="per-layer chart">'
    ]
    for column, metric in enumerate(LAYER_METRICS):
        parts.append(f'<text class="column" x="{label + column * _COLUMN}" y="12">{metric}</text>')
    y = 18
    for index, (layer, group) in enumerate(zip(shown, groups, strict=True)):
        colour = colours.get(group, "gnone")
        if index == 0 or groups[index - 1] != group:
            # A band across the chart names the group its following layers belong to.
            parts.append(
                f'<g class="band" data-group="{_e(group)}">'
                f'<rect class="band {colour}" x="0" y="{y + 2}" width="{width}" '
                f'height="{_BAND - 3}"></rect>'
                f'<text class="band-name" x="4" y="{y + 15}">group {_e(group)}</text></g>'
            )
            y += _BAND
        name = layer.path or f"({layer.type})"
        parts.append(
            f'<g class="layer-row" data-layer="{_e(name)}" data-group="{_e(group)}">'
            f'<rect class="stripe {colour}" x="0" y="{y + 1}" width="4" height="{_ROW - 2}">'
            "</rect>"
            f'<text class="path" x="{label - 6}" y="{y + 12}" text-anchor="end">'
            f"{_e(_label(layer))}</text>"
        )
        for column, metric in enumerate(LAYER_METRICS):
            value = layer.metric(metric)
            length = _BAR * value / peaks[metric]
            x = label + column * _COLUMN
            parts.append(
                f'<rect class="bar {metric} {colour}" data-layer="{_e(name)}" x="{x}" '
                f'y="{y + 3}" width="{length:.1f}" height="{_ROW - 5}"><title>{_e(name)}: '
                f"{human(value, metric)} {metric}</title></rect>"
                f'<text x="{x + length + 3:.1f}" y="{y + 12}">{human(value, metric)}</text>'
            )
        parts.append("</g>")
        y += _ROW
    parts.append("</svg>")
    return "".join(parts)


def _folded(zero: Sequence[LayerStats], result: BudgetResult) -> str:
    """Layers with no flops, activations or params (ReLU, pooling, dropout, ...): named,
    not drawn, so the chart shows where the compute is."""
    if not zero:
        return ""
    noun = "layer" if len(zero) == 1 else "layers"
    items = ", ".join(
        f'<code data-layer="{_e(layer.path)}">{_e(layer.path)}</code> {_e(layer.type)}'
        f"{' (' + _e(group) + ')' if (group := result.group_of(layer.path)) else ''}"
        for layer in zero
    )
    return (
        f'<details class="zero-layers"><summary>{len(zero)} {noun} with nothing measured '
        f"(0 flops, 0 activations, 0 params), not drawn</summary><p>{items}</p></details>"
    )
