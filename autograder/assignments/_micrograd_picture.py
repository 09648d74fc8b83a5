"""A picture of a micrograd expression graph: every Value with its data and grad, every op between.

The lecture draws the graph with graphviz, which needs a system binary (``dot``). This draws it with
matplotlib alone, which the course environment already installs with pip: columns by depth (leaves on
the left, the root on the right), each Value a box, each op a small circle feeding the Value it made.
It reads only ``data``, ``grad``, ``_prev``, ``_op`` and an optional ``label`` of the student's Values.
"""

from __future__ import annotations

from typing import Any

from ._micrograd_drivers import topological_order


def _box_text(node: object) -> str:
    label = getattr(node, "label", "")
    head = f"{label} | " if label else ""
    return f"{head}data {float(getattr(node, 'data', float('nan'))):.4f} | grad {float(getattr(node, 'grad', 0.0)):.4f}"


def draw_graph(root: object, max_nodes: int = 60, ax: Any = None) -> Any:
    """Draw the graph that produced ``root``; returns the matplotlib figure (shown by Jupyter)."""
    import matplotlib.pyplot as plt

    nodes = topological_order(root)
    if len(nodes) > max_nodes:
        raise ValueError(f"the graph has {len(nodes)} Values; a picture is readable up to {max_nodes}")
    depth: dict[int, int] = {}
    for node in nodes:  # children first, so each child's depth is known
        children = list(getattr(node, "_prev", ()))
        depth[id(node)] = 1 + max((depth[id(c)] for c in children), default=-1)
    columns: dict[int, list[object]] = {}
    for node in nodes:
        columns.setdefault(depth[id(node)], []).append(node)
    position: dict[int, tuple[float, float]] = {}
    for column, members in columns.items():
        for row, node in enumerate(members):
            position[id(node)] = (3.0 * column, row - (len(members) - 1) / 2)

    tallest = max(len(m) for m in columns.values())
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.2 * (len(columns) + 1), 1.1 * tallest + 1.5))
    else:
        fig = ax.figure
    box = dict(boxstyle="round,pad=0.3", facecolor="#eef3fb", edgecolor="#4a6fa5")
    for node in nodes:
        x, y = position[id(node)]
        ax.text(x, y, _box_text(node), ha="center", va="center", fontsize=8, bbox=box, zorder=3)
        op = getattr(node, "_op", "")
        children = list(getattr(node, "_prev", ()))
        if not children:
            continue
        ox, oy = x - 1.5, y  # the op's circle, just left of the Value it made
        ax.text(ox, oy, op or "?", ha="center", va="center", fontsize=9, zorder=3,
                bbox=dict(boxstyle="circle,pad=0.3", facecolor="#fff4d6", edgecolor="#b08900"))
        ax.annotate("", xy=(x - 0.9, y), xytext=(ox + 0.25, oy), arrowprops=dict(arrowstyle="->", color="#555"))
        for child in children:
            cx, cy = position[id(child)]
            ax.annotate("", xy=(ox - 0.25, oy), xytext=(cx + 0.9, cy),
                        arrowprops=dict(arrowstyle="->", color="#555", shrinkA=2, shrinkB=2))
    ax.set_xlim(-1.6, 3.0 * max(columns) + 1.6)
    ax.set_ylim(-tallest / 2 - 0.5, tallest / 2 + 0.5)
    ax.axis("off")
    return fig
