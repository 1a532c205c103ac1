"""``summary.md`` (and ``summary.json``) from the figures' data files.

The summary is rebuilt from every ``<output>/data/<figure>_<model>.json`` on disk, so that
regenerating one figure alone (``figure=[convergence]``) updates its part and keeps the others.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from nercc.figures.adversarial import THEORY_ADVERSARIES
from nercc.utils.io import write_json, write_text_atomic

__all__ = ["THEORY", "load_figure_data", "per_a_tables", "write_summary"]

THEORY = (
    'Theory (docs/method.md, "Convergence"): the smoothing-spline scheme\'s estimation error is '
    "bounded by O(S^3 N^-3) without noise (LeTCC), so at fixed S the mse may fall as fast as "
    "N^-3 (slope -3) and at a fixed fraction S/N the bound does not fall; Berrut's interpolant "
    "(BACC) converges only linearly in the node spacing (an error O(1/N): an mse slope of about "
    "-2 at best). A real network is not the smooth function the theorems assume: a flatter "
    "slope is a finding, not a failure."
)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if _finite(value) else "n/a"


def _cell(row: Mapping[str, Any] | None, metric: str) -> str:
    if row is None:
        return ""
    lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
    value = _num(row.get(metric))
    if _finite(lo) and _finite(hi):
        return f"{value} [{_num(lo, 3)}, {_num(hi, 3)}]"
    return value


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{seconds:.1f} s"


def load_figure_data(out: Path) -> list[dict[str, Any]]:
    """Every figure data file under ``out/data`` (unreadable ones skipped)."""
    found = []
    for path in sorted((out / "data").glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return found


def _labelled(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for run in data["runs"]:
        for row in run["rows"]:
            label = run["labels"].get(row["scheme"])
            if label is not None:
                rows.append({**row, "label": label, "panel": run["panel"]})
    return rows


def _per_s_tables(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The mse and rel_acc tables per S of a vs_stragglers figure's first panel, with the
    NeRCC/BACC mse ratio of every NeRCC label."""
    rows = _labelled(data)
    if not rows:
        return {}
    panel = rows[0]["panel"]
    rows = [r for r in rows if r["panel"] == panel]
    labels = list(dict.fromkeys(r["label"] for r in rows))
    by = {(r["label"], r["num_stragglers"]): r for r in rows}
    stragglers = sorted({r["num_stragglers"] for r in rows})
    bacc = next((r["label"] for r in rows if r["scheme"] == "bacc"), None)
    nercc = list(dict.fromkeys(r["label"] for r in rows if r["scheme"] == "nercc"))
    tables = {}
    for metric in ("mse", "rel_acc"):
        columns = ["S", *labels]
        if metric == "mse" and bacc is not None:
            columns += [f"{label} / {bacc}" for label in nercc]
        data_rows = []
        for s in stragglers:
            line = [str(s), *(_cell(by.get((label, s)), metric) for label in labels)]
            if metric == "mse" and bacc is not None:
                base = by.get((bacc, s))
                for label in nercc:
                    mine = by.get((label, s))
                    ok = mine and base and _finite(mine["mse"]) and base["mse"] > 0
                    line.append(_num(mine["mse"] / base["mse"], 3) if ok else "")
            data_rows.append(line)
        tables[metric] = {"columns": columns, "data": data_rows}
    return tables


def _panel_overrides(data: dict[str, Any], panel: str) -> list[str]:
    """The adversary overrides of a panel's runs (``adversary=sign_flip adversary.scale=20``)."""
    found: dict[str, None] = {}
    for run in data["runs"]:
        if run["panel"] == panel:
            found.update(dict.fromkeys(o for o in run["overrides"] if o.startswith("adversary")))
    return list(found)


def per_a_tables(data: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The tables per A of a vs_adversaries figure, per panel (adversary kind): ``mse`` (with
    each robust scheme's mse over its plain one's), ``rel_acc`` (with each label's over its own
    at A = 0) and, for the schemes that screen, ``detection`` (precision, recall, answers
    flagged per pattern). A robust scheme is ``<plain>_robust``."""
    rows = _labelled(data)
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    for panel in dict.fromkeys(r["panel"] for r in rows):
        mine = [r for r in rows if r["panel"] == panel]
        labels = list(dict.fromkeys(r["label"] for r in mine))
        by = {(r["label"], r.get("num_adversaries") or 0): r for r in mine}
        counts = sorted({r.get("num_adversaries") or 0 for r in mine})
        label_of = {r["scheme"]: r["label"] for r in mine}
        pairs = [(label_of[s], label_of[s.removesuffix("_robust")]) for s in label_of
                 if s.endswith("_robust") and s.removesuffix("_robust") in label_of]  # fmt: skip
        screening = [label for label in labels
                     if any(_finite(r.get("detection_recall")) for r in mine
                            if r["label"] == label)]  # fmt: skip

        def ratio(mine_row: Any, base_row: Any, metric: str) -> str:
            ok = (mine_row and base_row and _finite(mine_row.get(metric))
                  and _finite(base_row.get(metric)) and base_row[metric] > 0)  # fmt: skip
            return _num(mine_row[metric] / base_row[metric], 3) if ok else ""

        mse = {"columns": ["A", *labels, *(f"{r} / {p}" for r, p in pairs)],
               "data": [[str(a), *(_cell(by.get((label, a)), "mse") for label in labels),
                         *(ratio(by.get((r, a)), by.get((p, a)), "mse") for r, p in pairs)]
                        for a in counts]}  # fmt: skip
        rel = {"columns": ["A", *labels, *(f"{label} / its A=0" for label in labels)],
               "data": [[str(a), *(_cell(by.get((label, a)), "rel_acc") for label in labels),
                         *(ratio(by.get((label, a)), by.get((label, 0)), "rel_acc")
                           for label in labels)]
                        for a in counts]}  # fmt: skip
        panel_tables = {"mse": mse, "rel_acc": rel}
        if screening:
            panel_tables["detection"] = {
                "columns": ["A", *(f"{label} {what}" for label in screening
                                   for what in ("precision", "recall", "flagged"))],
                "data": [[str(a), *(_num((by.get((label, a)) or {}).get(key), 3)
                                    for label in screening
                                    for key in ("detection_precision", "detection_recall",
                                                "flagged_mean"))]
                         for a in counts],
            }  # fmt: skip
        tables[panel] = panel_tables
    return tables


def _per_a_lines(data: dict[str, Any], model: str, tables: dict[str, Any]) -> list[str]:
    """summary.md's part for a vs_adversaries figure (its tables added to ``tables``)."""
    lines: list[str] = []
    run = data["runs"][0]
    captions = {
        "mse": "mse per A{where}; value [95 % interval]; the last columns: each robust "
        "scheme's mse over its plain one's (at A = 0: the cost of robustness)",
        "rel_acc": "rel_acc per A{where}; value [95 % interval]; the last columns: each "
        "scheme's rel_acc over its own at A = 0",
        "detection": "Detection per A{where}: precision and recall of the answers flagged "
        "against the adversarial ones, answers flagged per pattern (n/a: nothing flagged, or "
        "no adversary)",
    }
    stragglers = sorted({r["num_stragglers"] for d in data["runs"] for r in d["rows"]})
    for panel, panel_tables in per_a_tables(data).items():
        given = " ".join(_panel_overrides(data, panel)) or panel
        where = (f" ({data['figure']}: adversary {panel}, `{given}`; {_images(data)} images, "
                 f"{run['patterns_per_group']} patterns per group, S and A, "
                 f"K={run['num_inputs']}, N={run['num_workers']}, "
                 f"S={'/'.join(map(str, stragglers))})")  # fmt: skip
        for metric, table in panel_tables.items():
            tables[f"{model}/{data['figure']}/{panel}/{metric}"] = table
            lines += [captions[metric].format(where=where) + ":", "",
                      *_markdown_table(table), ""]  # fmt: skip
    return lines


def _markdown_table(table: Mapping[str, Any]) -> list[str]:
    columns = table["columns"]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---:" for _ in columns) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in table["data"]]
    return lines


def _slopes(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The fitted slopes of a figure's data, each with its figure, kind, N and, under
    adversaries, the A at each N and the theory's slope (else None)."""
    found = []
    for panel, fits in (data.get("slopes") or {}).items():
        theory = (data.get("theory") or {}).get(panel)
        for label, slope in fits.items():
            workers = (data.get("slope_workers") or {}).get(panel, {}).get(label, [])
            counts = (data.get("slope_adversaries") or {}).get(panel, {}).get(label)
            found.append({"model": data["model"], "figure": data["figure"],
                          "kind": data.get("kind", "convergence"), "panel": panel,
                          "label": label, "slope": slope if _finite(slope) else float("nan"),
                          "num_workers": workers, "num_adversaries": counts,
                          "theory": theory if _finite(theory) else None})  # fmt: skip
    return found


def _slope_table(slopes: list[dict[str, Any]]) -> dict[str, Any]:
    if not any(s["kind"] == "adversary_convergence" for s in slopes):
        return {
            "columns": ["regime", "scheme", "slope of log mse on log N", "N"],
            "data": [[s["panel"], s["label"], _num(s["slope"], 3),
                      ", ".join(map(str, s["num_workers"]))] for s in slopes],
        }  # fmt: skip
    return {
        "columns": ["adversaries and S", "scheme", "slope of log mse on log N",
                    "theory (6/5)(a - 1)", "N", "A"],
        "data": [[s["panel"], s["label"], _num(s["slope"], 3), _num(s["theory"], 3),
                  ", ".join(map(str, s["num_workers"])),
                  ", ".join(map(str, s["num_adversaries"] or []))] for s in slopes],
    }  # fmt: skip


def _overview(slopes: list[dict[str, Any]], theory: bool) -> dict[str, Any]:
    """One line per (model, panel), one column per label (and the theory's slope)."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for s in slopes:
        pairs.setdefault((s["model"], s["panel"]), {})[s["label"]] = s["slope"]
        pairs[(s["model"], s["panel"])][None] = s["theory"]
    labels = list(dict.fromkeys(s["label"] for s in slopes))
    return {"columns": ["model", "regime", *(["theory"] if theory else []), *labels],
            "data": [[m, p, *([_num(fits.get(None), 3)] if theory else []),
                      *(_num(fits.get(label), 3) for label in labels)]
                     for (m, p), fits in pairs.items()]}  # fmt: skip


def _images(data: dict[str, Any]) -> str:
    runs = data["runs"]
    if not runs:
        return ""
    shown = dict.fromkeys(f"{r['images']} {r['split']}" for r in runs)
    return ", ".join(shown)


def _alone(figure: str, model: str, app: Sequence[str]) -> str:
    parts = ["python -m nercc.figures", *(shlex.quote(a) for a in app)]
    parts += [shlex.quote(f"figure=[{figure}]"), shlex.quote(f"figures.only=[{model}]")]
    return " ".join(parts)


def write_summary(
    out: Path,
    cfg: DictConfig,
    models: Sequence[str],
    figures: Mapping[str, Any],
    model_notes: Mapping[str, list[str]],
    prepared: Mapping[str, float],
    seconds: float,
    app: Sequence[str],
) -> tuple[Path, dict[str, Any]]:
    """Write ``out/summary.md`` and ``out/summary.json``; return the path and the summary.

    ``models`` and ``figures`` give the order of the sections (models on file but not named
    there come after); ``model_notes`` are this invocation's notes on models not drawn;
    ``prepared`` the seconds spent training or tuning; ``app`` the app's own overrides (to write
    the command that regenerates one figure alone).
    """
    found = load_figure_data(out)
    order = {name: i for i, name in enumerate(models)}
    figure_order = {name: i for i, name in enumerate(figures)}
    found.sort(
        key=lambda d: (
            order.get(d["model"], len(order)),
            d["model"],
            figure_order.get(d["figure"], len(figure_order)),
            d["figure"],
        )
    )
    summary_figure = cfg.figures.get("summary_figure")
    now = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    total = sum(d.get("seconds", 0) for d in found) + sum(prepared.values())
    dry = bool(cfg.figures.dry)
    lines = [
        "# Figures" + (" (dry mode: synthetic data, a tiny classifier)" if dry else ""),
        "",
        f"Written by `python -m nercc.figures{' figures.dry=true' if dry else ''}`"
        f"{'' if dry else ' (`make figures`)'} on {now}. This invocation took "
        f"{_duration(seconds)}; the figures on file took {_duration(total)} in all (their "
        "evaluations"
        + (f", plus {', '.join(f'{k} {_duration(v)}' for k, v in prepared.items())}" if prepared
           else "") + "). "
        "Every figure is drawn from `nercc.eval` runs (conf/figure/<name>.yaml); the commands "
        "that give its rows are under [Commands](#commands). Intervals: 95 %, 1.96 standard "
        "errors over the (group, pattern) draws.",
        "",
        "## Files",
        "",
        "| figure | model | file | split and images | patterns per group | run time | alone |",
        "| --- | --- | --- | --- | ---: | ---: | --- |",
    ]  # fmt: skip
    for d in found:
        patterns = "/".join(
            str(p) for p in dict.fromkeys(r["patterns_per_group"] for r in d["runs"])
        )
        link = f"[{d['file']}]({d['file']})" if d["file"] else "(none)"
        lines.append(
            f"| {d['figure']} | {d['model']} | {link} | {_images(d)} | {patterns} | "
            f"{_duration(d.get('seconds', 0))} | `{_alone(d['figure'], d['model'], app)}` |"
        )
    tables: dict[str, dict[str, Any]] = {}
    slopes: list[dict[str, Any]] = []
    models_on_file = list(dict.fromkeys(d["model"] for d in found))
    for model in models_on_file:
        mine = [d for d in found if d["model"] == model]
        lines += ["", f"## {mine[0]['about']} (`{model}`)", ""]
        main = next((d for d in mine if d["figure"] == summary_figure and d["runs"]), None)
        if main is not None:
            run = main["runs"][0]
            per_s = _per_s_tables(main)
            for metric, table in per_s.items():
                tables[f"{model}/{metric}"] = table
                lines += [
                    f"{metric} per S ({summary_figure}, {_images(main)} images, "
                    f"{run['patterns_per_group']} patterns per group and S, K={run['num_inputs']}, "
                    f"N={run['num_workers']}; value [95 % interval]"
                    + ("; the last columns: NeRCC's mse over BACC's" if metric == "mse" else "")
                    + "):",
                    "",
                    *_markdown_table(table),
                    "",
                ]
        for d in mine:
            if d.get("kind") == "vs_adversaries" and d["runs"]:
                lines += _per_a_lines(d, model, tables)
        for d in mine:
            found_slopes = _slopes(d)
            if found_slopes:
                slopes += found_slopes
                table = _slope_table(found_slopes)
                key = "slopes" if d.get("kind", "convergence") == "convergence" else d["figure"]
                tables[f"{model}/{key}"] = table
                lines += [f"Convergence slopes ({d['figure']}, {_images(d)} images):", "",
                          *_markdown_table(table), ""]  # fmt: skip
        notes = list(model_notes.get(model, []))
        notes += [f"{d['figure']}: {n}" for d in mine for n in d.get("notes", [])]
        if notes:
            lines += ["Notes:", "", *(f"- {n}" for n in dict.fromkeys(notes)), ""]
    for model, notes in model_notes.items():
        if model not in models_on_file:
            lines += ["", f"## `{model}`", "", *(f"- {n}" for n in notes)]
    plain = [s for s in slopes if s["kind"] == "convergence"]
    if plain:
        lines += ["", "## Convergence", "", THEORY, ""]
        tables["slopes"] = _overview(plain, theory=False)
        lines += _markdown_table(tables["slopes"])
    attacked = [s for s in slopes if s["kind"] == "adversary_convergence"]
    if attacked:
        lines += ["", "## Convergence under adversaries", "", THEORY_ADVERSARIES, ""]
        tables["adversary_slopes"] = _overview(attacked, theory=True)
        lines += _markdown_table(tables["adversary_slopes"])
    lines += ["", "## Commands", "",
              "Each figure alone: the `alone` column above. Its rows alone, run by run "
              "(`hydra.run.dir=...` to choose where they are written):"]  # fmt: skip
    for d in found:
        lines += ["", f"### {d['figure']} / {d['model']}", ""]
        if d["runs"]:
            lines += ["```bash", *(r["command"] for r in d["runs"]), "```"]
        else:
            lines.append("(no run)")
    text = "\n".join(lines).rstrip() + "\n"
    path = write_text_atomic(out / "summary.md", text)
    summary = {
        "date": now,
        "dry": dry,
        "seconds": seconds,
        "total_seconds": total,
        "prepared": dict(prepared),
        "files": [
            {
                "figure": d["figure"],
                "model": d["model"],
                "file": d["file"],
                "seconds": d.get("seconds"),
            }
            for d in found
        ],  # fmt: skip
        "slopes": slopes,
        "tables": tables,
    }
    write_json(out / "summary.json", summary)
    return path, summary
