"""PNG figures for the eval results and the data report (matplotlib, headless)."""

from __future__ import annotations

import io
from pathlib import Path

from . import fileio

BASE, ADAPTER = "#9aa5b1", "#2f6fb2"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=150, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def eval_chart(result: dict, path: Path) -> None:
    """Every model's primary metric per task, one panel per number of demonstrations, std as error bars."""
    plt = _pyplot()
    shots = sorted({r["k"] for r in result["rows"]})
    tasks = list(dict.fromkeys(r["task"] for r in result["rows"]))
    rows = {(r["model"], r["task"], r["k"]): r for r in result["rows"]}
    models = [m["label"] for m in result["models"]]
    colors = [BASE if m["adapter"] is None else None for m in result["models"]]
    fig, axes = plt.subplots(
        len(shots), 1, figsize=(max(6, 0.5 * len(tasks) * len(models) + 2), 3.2 * len(shots)), squeeze=False
    )
    width = 0.8 / len(models)
    for ax, k in zip(axes[:, 0], shots):
        for j, model in enumerate(models):
            if (model, tasks[0], k) not in rows:  # not scored at this k (`base_shots`: the base only)
                continue
            vals = [100 * rows[(model, t, k)]["primary"] for t in tasks]
            errs = [100 * rows[(model, t, k)]["primary_std"] for t in tasks]
            xs = [i + (j - (len(models) - 1) / 2) * width for i in range(len(tasks))]
            bars = ax.bar(
                xs,
                vals,
                width,
                yerr=errs if k else None,
                capsize=2,
                label=model,
                **({"color": colors[j], "alpha": 0.6 + 0.4 * (j % 2)} if colors[j] else {}),
            )
            ax.bar_label(bars, fmt="%.0f", fontsize=6, padding=1)
        avg = {a["model"]: 100 * a["primary"] for a in result["averages"] if a["k"] == k}
        ax.set_title(
            f"k = {k} demonstrations — average " + ", ".join(f"{m} {avg[m]:.1f}" for m in models if m in avg),
            loc="left",
            fontsize=9,
        )
        ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
        ax.set_ylabel("primary metric (%)")
        ax.set_ylim(0, max(10, ax.get_ylim()[1]))
        ax.legend(frameon=False, loc="upper right", fontsize=7)
    fig.suptitle(f"{Path(result['model']).name}: each task's primary metric", x=0.01, ha="left", fontweight="bold")
    fig.tight_layout()
    fileio.write_bytes(path, _png(fig))


def barh(labels: list[str], values: list[float], title: str, xlabel: str, color: str = ADAPTER) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(labels) + 1.2))
    ax.barh(range(len(labels)), values, color=color)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:g}", va="center", fontsize=8)
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    return _png(fig)


def histogram(values: list[int], title: str, xlabel: str) -> bytes:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(values, bins=min(30, max(5, len(set(values)))), color=ADAPTER, edgecolor="white")
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("instructions")
    return _png(fig)
