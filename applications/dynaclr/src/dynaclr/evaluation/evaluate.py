"""``dynaclr evaluate``: probe, k-NN, temporal smoothness and MMD with honest splits.

For each embedding zarr (one per model; several = a side-by-side comparison), and each label
column of ``obs``:

- a linear probe (standardize + logistic regression) scored by grouped cross-validation:
  leave one FOV / well / experiment out (``--group-by``); a group never appears on both
  sides of a split, so cells of one track never do either;
- k-NN accuracy with the same groups;
- temporal smoothness: mean distance of a track's embeddings at adjacent frames over that of
  random pairs (lower is smoother);
- MMD between the values of a condition column, with a permutation p-value.

Writes ``report.md`` (a comparison table and one table per model), ``metrics.json`` (the
numbers) and PNG figures (confusion matrices, smoothness distributions) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dynaclr.evaluation._io import group_labels, model_name, read_embeddings, track_keys

__all__ = [
    "GroupedProbeResult",
    "evaluate_embeddings",
    "grouped_probe",
    "main",
]


@dataclass
class GroupedProbeResult:
    """Out-of-fold scores of a linear probe under grouped cross-validation.

    Attributes
    ----------
    accuracy, balanced_accuracy : float
        Over the pooled out-of-fold predictions.
    chance_accuracy : float
        Accuracy of always predicting the most frequent class.
    fold_accuracies : list of float
        Accuracy of each held-out fold.
    classes : list of str
    confusion_matrix : list of list of int
        Rows true, columns predicted, in ``classes`` order.
    n_cells, n_groups, n_folds : int
    group_by : str
    skipped_folds : int
        Folds whose training side held a single class (not scored).
    """

    accuracy: float
    balanced_accuracy: float
    chance_accuracy: float
    fold_accuracies: list
    classes: list
    confusion_matrix: list
    n_cells: int
    n_groups: int
    n_folds: int
    group_by: str
    skipped_folds: int


def grouped_probe(
    x: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    group_by: str = "fov",
    max_folds: int = 10,
    seed: int = 0,
) -> GroupedProbeResult:
    """Linear-probe accuracy with grouped cross-validation.

    With at most ``max_folds`` groups every fold holds out one group (leave-one-group-out);
    with more, groups are dealt into ``max_folds`` folds (``GroupKFold``).
    """
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix
    from sklearn.model_selection import GroupKFold, LeaveOneGroupOut

    from viscy_utils.evaluation import build_linear_classifier

    labels = np.asarray(labels).astype(str)
    classes = sorted(set(labels.tolist()))
    if len(classes) < 2:
        raise ValueError(f"A probe needs at least 2 classes, got {classes}")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(
            f"Grouped cross-validation needs at least 2 groups; --group-by {group_by} gives "
            f"{n_groups}"
        )
    splitter = LeaveOneGroupOut() if n_groups <= max_folds else GroupKFold(n_splits=max_folds)
    predicted = np.full(len(labels), None, dtype=object)
    fold_accuracies, skipped = [], 0
    for train, test in splitter.split(x, labels, groups):
        if len(np.unique(labels[train])) < 2:
            skipped += 1
            continue
        model = build_linear_classifier(seed=seed)
        model.fit(x[train], labels[train])
        predicted[test] = model.predict(x[test])
        fold_accuracies.append(float(np.mean(predicted[test] == labels[test])))
    scored = predicted != None  # noqa: E711 - elementwise
    if not scored.any():
        raise ValueError(f"Every fold of --group-by {group_by} trains on a single class")
    y, p = labels[scored], predicted[scored].astype(str)
    values, counts = np.unique(y, return_counts=True)
    return GroupedProbeResult(
        accuracy=float(np.mean(y == p)),
        balanced_accuracy=float(balanced_accuracy_score(y, p)),
        chance_accuracy=float(counts.max() / counts.sum()),
        fold_accuracies=fold_accuracies,
        classes=classes,
        confusion_matrix=confusion_matrix(y, p, labels=classes).tolist(),
        n_cells=int(scored.sum()),
        n_groups=n_groups,
        n_folds=len(fold_accuracies),
        group_by=group_by,
        skipped_folds=skipped,
    )


def _labelled(obs: pd.DataFrame, column: str, path) -> np.ndarray:
    if column not in obs.columns:
        raise KeyError(
            f"obs of {path} has no label column {column!r} (columns: {list(obs.columns)}); "
            "add it with `dynaclr annotate`"
        )
    return obs[column].notna().to_numpy() & (obs[column].astype(str) != "nan").to_numpy()


def _evaluate_one(
    path: Path,
    labels: Sequence[str],
    group_by: str,
    condition: str | None,
    k: int,
    n_permutations: int,
    seed: int,
):
    from viscy_utils.evaluation import knn_accuracy, mmd_permutation_test, temporal_smoothness

    adata = read_embeddings(path)
    x = np.asarray(adata.X, dtype=np.float64)
    obs = adata.obs.reset_index(drop=True)
    groups = group_labels(obs, group_by)
    result: dict = {"path": str(path), "n_cells": int(len(x)), "n_features": int(x.shape[1])}
    result["probe"], result["knn"] = {}, {}
    for column in labels:
        keep = _labelled(obs, column, path)
        y = obs.loc[keep, column].astype(str).to_numpy()
        probe = grouped_probe(x[keep], y, groups[keep], group_by, seed=seed)
        result["probe"][column] = asdict(probe)
        result["knn"][column] = float(knn_accuracy(x[keep], y, k=k, groups=groups[keep], seed=seed))
    smooth = temporal_smoothness(x, track_keys(obs), obs["t"].to_numpy(), seed=seed)
    result["temporal_smoothness"] = {
        "ratio": smooth.ratio,
        "adjacent_distance": smooth.adjacent_distance,
        "random_distance": smooth.random_distance,
        "n_adjacent_pairs": smooth.n_adjacent_pairs,
    }
    result["mmd"] = {}
    if condition is not None:
        keep = _labelled(obs, condition, path)
        values = obs.loc[keep, condition].astype(str).to_numpy()
        levels = sorted(set(values.tolist()))
        for other in levels[1:]:
            test = mmd_permutation_test(
                x[keep][values == levels[0]],
                x[keep][values == other],
                n_permutations=n_permutations,
                seed=seed,
            )
            result["mmd"][f"{levels[0]} vs {other}"] = asdict(test)
    distances = (smooth.adjacent_distances, smooth.random_distances)
    return result, distances


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _save_png(fig, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png", bbox_inches="tight")
    os.replace(tmp, path)


def _confusion_figure(probe: dict, title: str, path: Path) -> None:
    from matplotlib.figure import Figure

    cm = np.asarray(probe["confusion_matrix"])
    classes = probe["classes"]
    fig = Figure(figsize=(1.2 + 0.9 * len(classes), 1.0 + 0.9 * len(classes)), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"{title}\naccuracy {probe['accuracy']:.3f} (leave-one-{probe['group_by']}-out)",
        fontsize="small",
    )
    _save_png(fig, path)


def _smoothness_figure(distances: dict[str, tuple], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(distances), 3.2), dpi=100)
    axes = fig.subplots(1, len(distances), squeeze=False)[0]
    for ax, (name, (adjacent, random)) in zip(axes, distances.items(), strict=True):
        scale = float(np.mean(random)) or 1.0
        bins = np.linspace(0, max(np.max(adjacent), np.max(random)) / scale, 40)
        ax.hist(random / scale, bins=bins, alpha=0.6, density=True, label="random pairs")
        ax.hist(adjacent / scale, bins=bins, alpha=0.6, density=True, label="same track, t+1")
        ax.set_title(f"{name}: ratio {np.mean(adjacent) / scale:.3f}", fontsize="small")
        ax.set_xlabel("distance / mean random distance")
        ax.legend(fontsize="x-small")
    _save_png(fig, path)


def _report(models: dict[str, dict], labels: Sequence[str], settings: dict) -> str:
    lines = ["# DynaCLR embedding evaluation", ""]
    lines.append(
        f"Grouped cross-validation: leave one `{settings['group_by']}` out (a track never "
        "spans train and test). Temporal smoothness: adjacent-frame distance / random-pair "
        "distance (lower is smoother)."
    )
    lines += ["", "## Comparison", ""]
    header = ["model", *(f"probe {c}" for c in labels), *(f"kNN {c}" for c in labels), "smoothness"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for name, m in models.items():
        row = [name]
        row += [f"{m['probe'][c]['accuracy']:.3f}" for c in labels]
        row += [f"{m['knn'][c]:.3f}" for c in labels]
        row.append(f"{m['temporal_smoothness']['ratio']:.3f}")
        lines.append("| " + " | ".join(row) + " |")
    for name, m in models.items():
        lines += [
            "",
            f"## {name}",
            "",
            f"`{m['path']}`: {m['n_cells']} cells x {m['n_features']} features",
            "",
        ]
        lines.append("| label | probe accuracy | balanced | chance | folds | kNN accuracy |")
        lines.append("|---|---|---|---|---|---|")
        for c in labels:
            p = m["probe"][c]
            lines.append(
                f"| {c} | {p['accuracy']:.3f} | {p['balanced_accuracy']:.3f} | "
                f"{p['chance_accuracy']:.3f} | {p['n_folds']} of {p['n_groups']} groups | "
                f"{m['knn'][c]:.3f} |"
            )
        s = m["temporal_smoothness"]
        lines += [
            "",
            f"Temporal smoothness {s['ratio']:.3f} (adjacent {s['adjacent_distance']:.3f}"
            f", random {s['random_distance']:.3f}, {s['n_adjacent_pairs']} pairs).",
        ]
        for pair, test in m["mmd"].items():
            lines.append(
                f"MMD² {pair}: {test['mmd2']:.4f} (permutation p = "
                f"{test['p_value']:.3g}, {test['n_permutations']} permutations)."
            )
        lines.append("")
        for figure in m["figures"]:
            lines.append(f"![{Path(figure).stem}]({figure})")
    lines += ["", "![temporal smoothness](figures/smoothness.png)", ""]
    return "\n".join(lines)


def evaluate_embeddings(
    paths: Sequence[str | Path],
    labels: Sequence[str],
    output_dir: str | Path,
    group_by: str = "fov",
    condition: str | None = None,
    names: Sequence[str] | None = None,
    k: int = 10,
    n_permutations: int = 200,
    seed: int = 0,
) -> dict:
    """Evaluate each store and write ``report.md``, ``metrics.json`` and ``figures/``.

    Parameters
    ----------
    paths : sequence of path
        AnnData zarr stores, one per model.
    labels : sequence of str
        ``obs`` columns to probe (e.g. ``infection_state``); cells without a value are left out.
    output_dir : path
    group_by : str
        ``fov``, ``well``, ``experiment`` or an ``obs`` column.
    condition : str, optional
        ``obs`` column whose values are compared by MMD (e.g. ``condition``).
    names : sequence of str, optional
        Model names in tables (default: the store names).
    k : int
        Neighbours of the k-NN classifier.
    n_permutations : int
        Permutations of the MMD test.
    seed : int

    Returns
    -------
    dict
        What ``metrics.json`` holds.
    """
    paths = [Path(p) for p in paths]
    names = list(names) if names else [model_name(p) for p in paths]
    if len(names) != len(paths) or len(set(names)) != len(names):
        raise ValueError(f"Need one distinct name per store, got {names} for {len(paths)} stores")
    if not labels:
        raise ValueError("Give at least one label column (--label)")
    output_dir = Path(output_dir)
    figures = output_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    models, distances = {}, {}
    for name, path in zip(names, paths, strict=True):
        result, distances[name] = _evaluate_one(
            path, labels, group_by, condition, k, n_permutations, seed
        )
        result["figures"] = []
        for column in labels:
            rel = f"figures/confusion_{name}_{column}.png"
            _confusion_figure(result["probe"][column], f"{name}: {column}", output_dir / rel)
            result["figures"].append(rel)
        models[name] = result
    _smoothness_figure(distances, figures / "smoothness.png")
    settings = {
        "group_by": group_by,
        "labels": list(labels),
        "condition": condition,
        "k": k,
        "n_permutations": n_permutations,
        "seed": seed,
    }
    out = {"settings": settings, "models": models}
    _atomic_write_text(output_dir / "metrics.json", json.dumps(out, indent=2))
    _atomic_write_text(output_dir / "report.md", _report(models, labels, settings))
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``dynaclr evaluate``."""
    parser = argparse.ArgumentParser(
        prog="dynaclr evaluate",
        description="Linear probe and k-NN with grouped cross-validation, temporal smoothness "
        "and MMD on embedding zarr(s); several zarrs = a side-by-side model comparison.",
    )
    parser.add_argument("embeddings", nargs="+", help="AnnData zarr store(s), one per model")
    parser.add_argument(
        "--label",
        action="append",
        required=True,
        help="obs column to probe (repeat); add it with `dynaclr annotate`",
    )
    parser.add_argument("--out", required=True, help="folder for report.md, metrics.json, figures")
    parser.add_argument(
        "--group-by",
        default="fov",
        help="fov | well | experiment | an obs column (default: %(default)s)",
    )
    parser.add_argument("--condition", help="obs column compared by MMD (e.g. condition)")
    parser.add_argument("--name", action="append", help="model name per store (repeat)")
    parser.add_argument("-k", type=int, default=10, help="k-NN neighbours")
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = evaluate_embeddings(
        args.embeddings,
        args.label,
        args.out,
        args.group_by,
        args.condition,
        args.name,
        args.k,
        args.permutations,
        args.seed,
    )
    print(
        _report(out["models"], args.label, out["settings"])
        .split("\n## ", 2)[1]
        .split("\n", 1)[1]
        .strip()
    )
    print(f"\nwrote {Path(args.out) / 'report.md'} and metrics.json")
    return 0
