"""The PNG chart: records/s of every measured figure, one panel per record size.

A log scale, because the figures span four orders of magnitude (fdatasync-bound produce next
to page-cache writes); min-max whiskers, because a median alone hides this VM's bimodal runs.
"""

from __future__ import annotations

from .model import Context

COLORS = {
    "limits": "#7f7f7f",
    "embedded": "#1f77b4",
    "broker": "#d62728",
    "redis": "#ff7f0e",
    "nats": "#2ca02c",
}


def write_chart(ctx: Context, path: str) -> bool:
    """Draw and save the chart; False (and a note) if matplotlib is missing or nothing ran."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        ctx.notes.append("No chart: matplotlib is not installed (pip install 'edplog[bench]').")
        return False
    sizes = [
        s for s in ctx.record_sizes if any(f.ok and f.spec.record_size == s for f in ctx.figures)
    ]
    if not sizes:
        ctx.notes.append("No chart: no figure was measured.")
        return False
    rows = max(sum(1 for f in ctx.figures if f.ok and f.spec.record_size == s) for s in sizes)
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(7 * len(sizes), 0.38 * rows + 1.6), squeeze=False
    )
    for ax, size in zip(axes[0], sizes, strict=True):
        figures = [f for f in ctx.figures if f.ok and f.spec.record_size == size]
        labels, med, lo, hi, colors = [], [], [], [], []
        for f in figures:
            m, a, b = f.records_per_s()
            labels.append(f"{f.spec.family}: {f.spec.title} [{f.spec.durability[:28]}]")
            med.append(m)
            lo.append(m - a)
            hi.append(b - m)
            colors.append(COLORS.get(f.spec.family, "#9467bd"))
        ypos = list(range(len(figures)))[::-1]
        ax.barh(ypos, med, xerr=[lo, hi], color=colors, capsize=2)
        ax.set_yticks(ypos)
        ax.set_yticklabels(labels, fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("records/s (median, min-max)")
        ax.set_title(f"{size}-byte records ({ctx.budget.name} mode, {ctx.runs} runs)")
        ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
