"""Figures for the analysts' notebooks: one library (matplotlib) and one look.

Every function returns a :class:`matplotlib.figure.Figure` made without pyplot, so nothing is shown or kept open
behind the caller's back: a notebook cell that ends with the figure shows it once (Jupyter's inline backend), a
script saves it with ``fig.savefig``. Colours are the Okabe–Ito palette (distinguishable with the common colour
vision deficiencies); estimates are labelled as such in titles and axes by the callers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Okabe–Ito: distinguishable by people with deuteranopia, protanopia and tritanopia.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
REFERENCE_COLOUR = "#D55E00"
STYLE: dict[str, Any] = {
    "figure.figsize": (8.0, 4.0), "figure.dpi": 100, "font.size": 10, "axes.titlesize": 11,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "axes.prop_cycle": None,  # set from PALETTE in style()
    "legend.frameon": False,
}


@contextmanager
def style() -> Iterator[None]:
    """The notebooks' look, for figures made inside."""
    import matplotlib as mpl
    from cycler import cycler

    settings: dict[str, Any] = {**STYLE, "axes.prop_cycle": cycler(color=list(PALETTE))}
    with mpl.rc_context(settings):  # type: ignore[arg-type]
        yield


def _figure(width: float = 8.0, height: float = 4.0) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _nothing(ax: Axes, title: str) -> None:
    """An empty chart that says so (a store may hold no study of a kind: the section still shows)."""
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data to show", ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])


def bars(table: pd.DataFrame, *, x: str, y: str, hue: str | None = None, title: str, ylabel: str,
         horizontal: bool = False) -> Figure:
    """Bars of ``y`` by ``x`` (grouped by ``hue`` when given)."""
    with style():
        fig, ax = _figure()
        if table.empty or table[y].dropna().empty:
            _nothing(ax, title)
            return fig
        data = table.pivot_table(index=x, columns=hue, values=y, aggfunc="sum", fill_value=0) if hue else \
            table.set_index(x)[[y]]
        data.plot.barh(ax=ax, width=0.8) if horizontal else data.plot.bar(ax=ax, width=0.8, rot=0)
        ax.set_title(title)
        (ax.set_xlabel if horizontal else ax.set_ylabel)(ylabel)
        (ax.set_ylabel if horizontal else ax.set_xlabel)(x.replace("_", " "))
        legend = ax.get_legend()
        if not hue and legend is not None:
            legend.remove()
        return fig


def boxes_with_reference(frame: pd.DataFrame, *, category: str, value: str, reference: Mapping[str, float],
                         title: str, ylabel: str, reference_label: str) -> Figure:
    """A box per category of ``value``, with a reference level per category (a DRL) drawn across its box."""
    with style():
        fig, ax = _figure(max(6.0, 0.9 * frame[category].nunique() + 2), 4.5)
        categories = sorted(frame[category].dropna().unique())
        if not categories or frame[value].dropna().empty:
            _nothing(ax, title)
            return fig
        ax.boxplot([frame.loc[frame[category] == c, value].dropna() for c in categories], showfliers=True)
        ax.set_xticks(range(1, len(categories) + 1), categories, rotation=30, ha="right")
        labelled = False
        for i, c in enumerate(categories, start=1):
            level = reference.get(c)
            if level is not None and level == level:  # NaN: no reference for this category
                ax.hlines(level, i - 0.4, i + 0.4, colors=REFERENCE_COLOUR, linewidth=2,
                          label="_nolegend_" if labelled else reference_label)
                labelled = True
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if labelled:
            ax.legend()
        return fig


def lines(table: pd.DataFrame, *, title: str, ylabel: str) -> Figure:
    """One line per column of ``table`` over its index (e.g. months)."""
    with style():
        fig, ax = _figure()
        if table.empty or table.dropna(how="all").empty:
            _nothing(ax, title)
            return fig
        table.plot(ax=ax, marker="o", markersize=3)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("")
        return fig


def scatter(frame: pd.DataFrame, *, x: str, y: str, hue: str | None = None, title: str, xlabel: str,
            ylabel: str) -> Figure:
    """Points of ``y`` against ``x``, coloured by ``hue``."""
    with style():
        fig, ax = _figure()
        if frame.empty:
            _nothing(ax, title)
            return fig
        groups = frame.groupby(hue) if hue else [("", frame)]
        for name, part in groups:
            ax.scatter(part[x], part[y], s=14, alpha=0.7, label=str(name) if hue else None)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if hue:
            ax.legend(title=hue.replace("_", " "))
        return fig


def histogram(values: Sequence[float] | pd.Series, *, title: str, xlabel: str, bins: int = 40,
              thresholds: Sequence[float] = (), log: bool = False) -> Figure:
    """A histogram of ``values`` with vertical lines at ``thresholds``."""
    with style():
        fig, ax = _figure()
        if len(values) == 0:
            _nothing(ax, title)
            return fig
        ax.hist(list(values), bins=bins, color=PALETTE[0], log=log)
        for threshold in thresholds:
            ax.axvline(threshold, color=REFERENCE_COLOUR, linestyle="--", label=f"{threshold:g}")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("patients" + (" (log scale)" if log else ""))
        if thresholds:
            ax.legend(title="threshold")
        return fig


__all__ = ["PALETTE", "bars", "boxes_with_reference", "histogram", "lines", "scatter", "style"]
