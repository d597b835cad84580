"""The bench's PNG chart, drawn with matplotlib (the optional extra ``bench``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from claude_proxy.bench.plan import DESIGN_NOTE
from claude_proxy.bench.report import Report, RowResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["INSTALL_HINT", "ChartUnavailable", "check_matplotlib", "write_chart"]

INSTALL_HINT = "pip install 'claude-proxy[bench]'"


class ChartUnavailable(Exception):
    """matplotlib is not installed; the message says how to install it."""


def check_matplotlib() -> None:
    """Fail before measuring anything, not after minutes of it, if the chart cannot be drawn."""
    try:
        import matplotlib
    except ImportError:
        raise ChartUnavailable(
            f"the chart needs matplotlib, which is not installed: {INSTALL_HINT} "
            "(or run with --no-chart)"
        ) from None
    # Agg draws into memory: no display, no GUI toolkit, the same on a server as anywhere.
    matplotlib.use("Agg")


def write_chart(report: Report, path: Path) -> None:
    check_matplotlib()
    from matplotlib.figure import Figure

    figure = Figure(figsize=(15, 4.8), layout="constrained")
    by_output, by_input, memory = figure.subplots(1, 3)
    _by_output(by_output, report.series("max_tokens"), report.comparable)
    _by_input(by_input, report.series("input"), report.plan.input_max_tokens)
    _memory(memory, report.rows, report.comparable)
    figure.suptitle(
        f"claude-proxy bench, {report.date}: {report.plan.model}, {report.upstream}, "
        f"{report.plan.runs} runs a row (lines: p50; bars: p50 to p95)",
        fontsize=10,
    )
    figure.savefig(path, format="png", dpi=110)


def _errors(rows: list[RowResult], which: str) -> tuple[list[float], list[list[float]]]:
    p50 = [row.ms(which, 50) for row in rows]
    return p50, [
        [0.0] * len(rows),
        [row.ms(which, 95) - m for row, m in zip(rows, p50, strict=True)],
    ]


def _by_output(axes: Axes, rows: list[RowResult], comparable: bool) -> None:
    axes.set_title("By max_tokens", fontsize=10)
    if not rows:
        return
    x = [row.case.max_tokens for row in rows]
    for which, name in (("latency", "latency"), ("ttft", "time to first token")):
        p50, spread = _errors(rows, which)
        axes.errorbar(x, p50, yerr=spread, marker="o", capsize=3, label=name)
    noted = [n for n in x if n in DESIGN_NOTE] if comparable else []
    if noted:
        axes.plot(
            noted,
            [DESIGN_NOTE[n][0] for n in noted],
            linestyle="none",
            marker="x",
            markersize=9,
            color="black",
            label="design note",
        )
    axes.set_xscale("log", base=2)
    axes.set_xticks(x, [str(n) for n in x])
    axes.set_xlabel("max_tokens (answer length)")
    axes.set_ylabel("ms")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)


def _by_input(axes: Axes, rows: list[RowResult], max_tokens: int) -> None:
    axes.set_title(f"By input length (max_tokens {max_tokens})", fontsize=10)
    if not rows:
        return
    for cache, style in (("off", "-"), ("on", "--")):
        chosen = [row for row in rows if row.case.cache == cache]
        x = [row.case.input_tokens or 0 for row in chosen]
        for which, name in (("ttft", "TTFT"), ("latency", "latency")):
            p50, spread = _errors(chosen, which)
            axes.errorbar(
                x,
                p50,
                yerr=spread,
                marker="o" if which == "ttft" else "s",
                linestyle=style,
                capsize=3,
                label=f"{name}, prompt cache {cache}",
            )
    sizes = sorted({row.case.input_tokens or 0 for row in rows})
    axes.set_xscale("log")
    axes.set_xticks(sizes, [f"{n:,}" for n in sizes])
    axes.minorticks_off()
    axes.set_xlabel("input tokens (estimated)")
    axes.set_ylabel("ms")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)


def _memory(axes: Axes, rows: list[RowResult], comparable: bool) -> None:
    axes.set_title("Gateway memory per row", fontsize=10)
    measured = [(row, row.memory) for row in rows if row.memory is not None]
    if not measured:
        axes.text(0.5, 0.5, "not measured", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return
    y = list(range(len(measured)))
    axes.barh(y, [memory.peak_mb for _, memory in measured], color="C0", label="peak RSS")
    axes.plot(
        [memory.rss_mb for _, memory in measured],
        y,
        linestyle="none",
        marker="|",
        markersize=12,
        color="C1",
        label="RSS after the row",
    )
    noted = [(i, row.case.max_tokens) for i, (row, _) in enumerate(measured)]
    noted = [(i, n) for i, n in noted if comparable and measured[i][0].case.series == "max_tokens"]
    noted = [(i, n) for i, n in noted if n in DESIGN_NOTE]
    if noted:
        axes.plot(
            [DESIGN_NOTE[n][1] for _, n in noted],
            [i for i, _ in noted],
            linestyle="none",
            marker="x",
            markersize=9,
            color="black",
            label="design note",
        )
    axes.set_yticks(y, [row.case.label for row, _ in measured], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("MB")
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3, axis="x")
