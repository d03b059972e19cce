# ---
# jupyter:
#   jupytext:
#     formats: py:percent,ipynb
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Infection timing from DynaCLR embeddings
#
# From embeddings (`dynaclr predict`) and a few annotated cells to two figures:
#
# - the fraction of infected-like cells over time, per condition;
# - when each track turns infected-like (its transition time), compared with the annotation.
#
# By default it reads the output of `dynaclr demo` (`demo_output/`); point
# `DYNACLR_EMBEDDINGS` and `DYNACLR_ANNOTATIONS` at your own AnnData zarr and CSV
# (`fov_name, track_id, t, infection_state, condition`).

# %%
import os
from pathlib import Path

import numpy as np
import pandas as pd

EMBEDDINGS = Path(os.environ.get("DYNACLR_EMBEDDINGS", "demo_output/embeddings_trained.zarr"))
ANNOTATIONS = Path(os.environ.get("DYNACLR_ANNOTATIONS", "demo_output/tracks/cell_conditions.csv"))
OUT = Path(os.environ.get("DYNACLR_TUTORIAL_OUT", "infection_output"))
OUT.mkdir(parents=True, exist_ok=True)
if not EMBEDDINGS.exists():
    raise SystemExit(f"{EMBEDDINGS} not found: run `dynaclr demo` first or set DYNACLR_EMBEDDINGS")

# %% [markdown]
# ## 1. Embeddings and annotations
#
# `merge_annotations` joins the CSV on `(fov_name, track_id, t)` and reports what did not
# match. We pretend only half of the FOVs were annotated by hand: the probe learns from
# those, and labels the other half.

# %%
from dynaclr.evaluation._io import read_embeddings, track_keys
from dynaclr.evaluation.annotate import merge_annotations

adata = read_embeddings(EMBEDDINGS)
obs, report = merge_annotations(adata.obs, pd.read_csv(ANNOTATIONS))
print(report.summary())
obs = obs.reset_index(drop=True)
obs["fov_name"] = obs["fov_name"].astype(str).str.strip("/")
obs["track"] = track_keys(obs)
x = np.asarray(adata.X, dtype=np.float64)
fovs = sorted(obs["fov_name"].unique())
annotated = obs["fov_name"].isin(fovs[::2]).to_numpy()
print(
    f"{annotated.sum()} annotated cells in {len(fovs[::2])} FOVs, "
    f"{(~annotated).sum()} to label in {len(fovs[1::2])} FOVs"
)

# %% [markdown]
# ## 2. A linear probe labels the unannotated FOVs

# %%
from viscy_utils.evaluation import build_linear_classifier

probe = build_linear_classifier()
probe.fit(x[annotated], obs.loc[annotated, "infection_state"].astype(str))
obs["predicted"] = probe.predict(x)
test = ~annotated
accuracy = float(np.mean(obs.loc[test, "predicted"] == obs.loc[test, "infection_state"]))
print(f"probe accuracy on the unannotated FOVs: {accuracy:.3f}")

# %% [markdown]
# ## 3. Fraction of infected-like cells over time, per condition

# %%
from matplotlib.figure import Figure

labelled = obs[test].assign(infected_like=lambda d: d["predicted"] == "infected")
fraction = labelled.groupby(["condition", "t"])["infected_like"].mean().unstack(0)
truth = labelled.assign(infected=lambda d: d["infection_state"] == "infected")
truth = truth.groupby(["condition", "t"])["infected"].mean().unstack(0)
fig = Figure(figsize=(5, 3.5))
ax = fig.add_subplot()
for condition in fraction.columns:
    line = ax.plot(fraction.index, fraction[condition], marker="o", label=f"{condition}")[0]
    ax.plot(truth.index, truth[condition], ls="--", color=line.get_color(), alpha=0.6)
ax.set_xlabel("timepoint")
ax.set_ylabel("fraction infected-like")
ax.set_ylim(-0.05, 1.05)
ax.set_title("predicted (solid) vs annotated (dashed)", fontsize="small")
ax.legend(title="condition", fontsize="small")
fig.savefig(OUT / "infected_fraction.png", bbox_inches="tight")
print(fraction.round(2))
fig

# %% [markdown]
# ## 4. Per-track transition times
#
# A track's transition is the first timepoint from which it stays infected-like for the
# rest of the track (a single-frame blip does not count).


# %%
def transition_time(track: pd.DataFrame, column: str, positive: str) -> float:
    """First t from which every later observation is ``positive`` (NaN if never)."""
    states = (track.sort_values("t")[column] == positive).to_numpy()
    times = track.sort_values("t")["t"].to_numpy()
    if not states[-1]:
        return np.nan
    not_positive = np.flatnonzero(~states)
    first = 0 if len(not_positive) == 0 else not_positive[-1] + 1
    return float(times[first])


rows = []
for track, cells in labelled.groupby("track"):
    rows.append(
        {
            "track": track,
            "condition": cells["condition"].iloc[0],
            "predicted_transition": transition_time(cells, "predicted", "infected"),
            "annotated_transition": transition_time(cells, "infection_state", "infected"),
        }
    )
transitions = pd.DataFrame(rows)
transitions.to_csv(OUT / "transitions.csv", index=False)
both = transitions.dropna(subset=["predicted_transition", "annotated_transition"])
error = (both["predicted_transition"] - both["annotated_transition"]).abs()
print(f"{len(both)} tracks with both transitions; median |error| {error.median():.1f} frames")

fig = Figure(figsize=(4, 4))
ax = fig.add_subplot()
jitter = np.random.default_rng(0).uniform(-0.15, 0.15, size=(len(both), 2))
ax.scatter(
    both["annotated_transition"] + jitter[:, 0], both["predicted_transition"] + jitter[:, 1], s=12
)
top = float(obs["t"].max())
ax.plot([0, top], [0, top], color="grey", lw=1)
ax.set_xlabel("annotated transition (t)")
ax.set_ylabel("predicted transition (t)")
ax.set_title("per-track infection timing", fontsize="small")
fig.savefig(OUT / "transition_times.png", bbox_inches="tight")
fig
