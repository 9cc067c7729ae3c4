"""An evaluation written for people: report.html with PNG plots, metrics.csv and metrics.json."""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import Any

from inference.training.evaluate import EvalResult
from radlens_core.files import atomic_write_text


def _plots(res: EvalResult, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # no display on a training station; never opens a window
    import matplotlib.pyplot as plt

    made = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        made.append(name)

    if res.task == "segmentation":
        keys = [k for k in res.per_case[0] if k.startswith("dice_")]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        data = [[r[k] for r in res.per_case] for k in keys]
        ax.boxplot(data)
        ax.set_xticks(range(1, len(keys) + 1), [k[5:] for k in keys])
        ax.set_ylabel("Dice per case")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{res.model_id}: Dice over {len(res.per_case)} cases")
        save(fig, "dice.png")
    if "froc" in res.curves:
        x, y = res.curves["froc"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.step(x, y, where="post")
        ax.set_xscale("symlog", linthresh=0.125)
        ax.set_xlabel("false positives per case")
        ax.set_ylabel("sensitivity")
        ax.set_ylim(0, 1.02)
        ax.set_title("FROC")
        save(fig, "froc.png")
    if "pr" in res.curves:
        x, y = res.curves["pr"]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(x, y)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_title("Precision-recall")
        save(fig, "pr.png")
    if "roc" in res.curves:
        x, y = res.curves["roc"]
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(x, y, label=f"AUC {res.summary.get('auc', math.nan):.3f}")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_xlabel("1 - specificity")
        ax.set_ylabel("sensitivity")
        ax.legend(loc="lower right")
        ax.set_title("ROC")
        save(fig, "roc.png")
    if res.confusion is not None:
        fig, ax = plt.subplots(figsize=(4, 3.5))
        ax.imshow(res.confusion, cmap="Blues")
        names = res.classes or [str(i) for i in range(len(res.confusion))]
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(names)), names)
        for i, row in enumerate(res.confusion):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center")
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title("Confusion matrix")
        save(fig, "confusion.png")
    return made


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4f}"
    return html.escape(str(v))


def _rows(res: EvalResult) -> list[tuple[str, str, str, Any]]:
    """Every number as (scope, case_id, metric, value): the summary first, then each case."""
    rows: list[tuple[str, str, str, Any]] = [("summary", "", k, v) for k, v in res.summary.items()]
    for case in res.per_case:
        for k, v in case.items():
            if k not in ("case_id", "patient_id"):
                rows.append(("case", case["case_id"], k, v))
    if res.confusion is not None:
        for i, row in enumerate(res.confusion):
            for j, v in enumerate(row):
                rows.append(("confusion", "", f"true_{i}_pred_{j}", v))
    return rows


def write_report(res: EvalResult, out: str | Path) -> Path:
    """Write REPORT/report.html, metrics.csv, metrics.json and the plots; returns the HTML."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".metrics.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["scope", "case_id", "metric", "value"])
        w.writerows(_rows(res))
    tmp.replace(out / "metrics.csv")
    atomic_write_text(
        out / "metrics.json",
        json.dumps({"summary": res.summary, "per_case": res.per_case}, indent=1, default=float),
    )
    images = _plots(res, out)
    cols = list(res.per_case[0]) if res.per_case else []
    case_rows = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>"
        for r in res.per_case
    )
    summary = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in res.summary.items()
    )
    figures = "".join(f'<img src="{name}" alt="{name}">' for name in images)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>RadLens evaluation: {html.escape(res.model_id)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}
th{{background:#f4f4f4}}img{{margin:.5em;border:1px solid #ddd}}</style></head><body>
<h1>Evaluation of {html.escape(res.model_id)} {html.escape(res.model_version)} ({res.task})</h1>
<p>Dataset: {html.escape(res.dataset)}. Every case was run through the RadLens engine and
compared with its ground truth on the image's own grid. HD95 is in millimetres; "n/a" means
undefined (e.g. a surface distance to an empty mask).</p>
<h2>Summary</h2><table>{summary}</table>
<h2>Plots</h2>{figures}
<h2>Per case</h2><table><tr>{"".join(f"<th>{html.escape(c)}</th>" for c in cols)}</tr>{case_rows}</table>
<p>All numbers: <a href="metrics.csv">metrics.csv</a>.</p>
</body></html>
"""
    atomic_write_text(out / "report.html", page)
    return out / "report.html"


def write_card_metrics(model_dir: str | Path, res: EvalResult, dataset_note: str) -> Path:
    """Record the summary in the package's model.json ``metrics`` (weights are untouched)."""
    from inference.card import ModelCard

    path = Path(model_dir) / "model.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    clean = {
        k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in res.summary.items()
    }
    data["metrics"] = {**clean, "split": dataset_note}
    ModelCard.from_dict(data, path.parent)  # never leave a card the registry would refuse
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path
