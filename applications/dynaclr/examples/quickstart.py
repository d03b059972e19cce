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
# # DynaCLR quickstart: from a plate to evaluated embeddings, in Python
#
# This notebook walks through the Python API on a small synthetic plate (the same kind
# `dynaclr demo` writes): the data module, a picture of a batch, training a few epochs,
# predicting embeddings, evaluating them with honest (grouped) splits, and plotting.
# It runs on a CPU in a few minutes. Run it as a script (`python quickstart.py`) or open the
# paired `quickstart.ipynb`. Set `DYNACLR_TUTORIAL_SIZE=small` for a seconds-long smoke run.

# %%
import os
from pathlib import Path

import numpy as np

SMALL = os.environ.get("DYNACLR_TUTORIAL_SIZE") == "small"
OUT = Path(os.environ.get("DYNACLR_TUTORIAL_OUT", "quickstart_output"))
OUT.mkdir(parents=True, exist_ok=True)
SIZE = 64 if SMALL else 128
TIMEPOINTS = 4 if SMALL else 8
EPOCHS = 1 if SMALL else 6

# %% [markdown]
# ## 1. A time-lapse plate with tracks
#
# Two uninfected and two infected wells. Infected cells move a fluorescent reporter from
# the cytoplasm into the nucleus at the same total intensity, so the mean GFP brightness of
# a cell does not tell its state. The generator also writes one `tracks.csv` per FOV and a
# table of every cell's condition and infection state.

# %%
from viscy_data.synthetic import write_synthetic_plate

plate_path = OUT / "plate.zarr"
if not plate_path.exists():
    write_synthetic_plate(
        plate_path,
        shape=(TIMEPOINTS, 2, 1, SIZE, SIZE),
        channel_names=("Phase3D", "GFP"),
        wells=(("A", "1"), ("A", "2"), ("B", "1"), ("B", "2")),
        fovs_per_well=2,
        tracks_path=OUT / "tracks",
        cells_per_fov=4 if SMALL else 8,
        infection_onset=1 if SMALL else 2,
        phenotype="relocalization",
    )
held_out = ["A/1/1", "A/2/1", "B/1/1", "B/2/1"]  # FOVs the encoder never sees

# %% [markdown]
# ## 2. The data module and one batch
#
# `TripletDataModule` reads a patch around every tracked cell (anchor), the same cell one
# frame later (positive) and, with `return_negative`, another cell. Normalizations and
# augmentations run on the whole batch after it reaches the device
# (`on_after_batch_transfer`).

# %%
from viscy_data.triplet import TripletDataModule
from viscy_transforms import BatchedRandFlipd, BatchedRandScaleIntensityd, NormalizeSampled

channels = ["Phase3D", "GFP"]
normalize = NormalizeSampled(
    keys=channels, level="fov_statistics", subtrahend="mean", divisor="std"
)
datamodule = TripletDataModule(
    data_path=str(plate_path),
    tracks_path=str(OUT / "tracks"),
    source_channel=channels,
    z_range=(0, 1),
    initial_yx_patch_size=(40, 40),
    final_yx_patch_size=(32, 32),
    batch_size=32,
    num_workers=1,
    time_interval=1,
    exclude_border_cells=False,  # synthetic cells lie near the border too: keep them
    follow_lineage=True,  # a dividing cell's last frame pairs with a daughter
    return_negative=True,
    fit_exclude_fovs=held_out,
    normalizations=[normalize],
    augmentations=[
        BatchedRandFlipd(keys=channels, spatial_axes=[1, 2], prob=0.5),
        BatchedRandScaleIntensityd(keys=channels, factors=0.3, prob=0.8),
    ],
)
datamodule.setup("fit")
batch = next(iter(datamodule.train_dataloader()))
batch = datamodule.on_after_batch_transfer(batch, 0)
print({k: tuple(v.shape) for k, v in batch.items() if hasattr(v, "shape")})

# %%
from matplotlib.figure import Figure

from dynaclr.engine import render_triplet_grid

grid = render_triplet_grid({k: batch[k] for k in ("anchor", "positive", "negative")}, max_samples=4)
fig = Figure(figsize=(6, 4))
ax = fig.add_subplot()
ax.imshow(grid)
ax.set_axis_off()
ax.set_title("anchor | positive (t+1) | negative; each Phase3D, GFP", fontsize="small")
fig.savefig(OUT / "batch.png", bbox_inches="tight")
fig

# %% [markdown]
# ## 3. Train a few epochs
#
# `ContrastiveModule` with a small CPU encoder and NT-Xent with hard-negative concentration.
# With NT-Xent the other cells of the batch are the negatives, so the data module does not
# need to read them.

# %%
from lightning.pytorch import Trainer, seed_everything

from dynaclr import ContrastiveModule, NTXentHCL, TinyEncoder

seed_everything(0, verbose=False)
datamodule.return_negative = False
datamodule.setup("fit")
module = ContrastiveModule(
    encoder=TinyEncoder(in_channels=2, width=8, embedding_dim=32, projection_dim=32),
    loss_function=NTXentHCL(temperature=0.2, beta=0.5),
    lr=2e-3,
)
trainer = Trainer(
    accelerator="cpu",
    max_epochs=EPOCHS,
    logger=False,
    enable_checkpointing=False,
    enable_model_summary=False,
    enable_progress_bar=not SMALL,
    limit_val_batches=0,
)
trainer.fit(module, datamodule)

# %% [markdown]
# ## 4. Predict embeddings of the held-out FOVs
#
# `EmbeddingWriter` writes an AnnData zarr: `X` = one feature vector per cell and
# timepoint, `obs` = the tracking index (`fov_name, track_id, t, ...`).

# %%
import pandas as pd

from viscy_utils.callbacks import EmbeddingWriter

cells = pd.read_csv(OUT / "tracks" / "cell_conditions.csv")
tracks = cells[cells["fov_name"].isin(held_out)][["fov_name", "track_id"]].drop_duplicates()
predict_data = TripletDataModule(
    data_path=str(plate_path),
    tracks_path=str(OUT / "tracks"),
    source_channel=channels,
    z_range=(0, 1),
    initial_yx_patch_size=(32, 32),
    final_yx_patch_size=(32, 32),
    batch_size=128,
    num_workers=1,
    exclude_border_cells=False,
    normalizations=[normalize],
    predict_cells=True,
    include_fov_names=tracks["fov_name"].tolist(),
    include_track_ids=tracks["track_id"].tolist(),
)
embeddings = OUT / "embeddings.zarr"
writer = EmbeddingWriter(output_path=embeddings, overwrite=True)
Trainer(accelerator="cpu", logger=False, callbacks=[writer], enable_progress_bar=not SMALL).predict(
    module, predict_data, return_predictions=False
)

# %% [markdown]
# ## 5. Annotate, evaluate, plot
#
# The same functions the `dynaclr annotate / reduce / evaluate / plot` commands run. The
# probe is scored leave-one-FOV-out: cells of one FOV (and so of one track) are never on
# both sides of a split.

# %%
from dynaclr.evaluation.annotate import annotate_embeddings
from dynaclr.evaluation.evaluate import evaluate_embeddings
from dynaclr.evaluation.plot import plot_scatter
from dynaclr.evaluation.reduce import reduce_embeddings

print(annotate_embeddings(embeddings, OUT / "tracks" / "cell_conditions.csv").summary())
reduce_embeddings([embeddings], ["pca"])
metrics = evaluate_embeddings(
    [embeddings], ["infection_state"], OUT / "evaluation", group_by="fov", n_permutations=50
)
model = metrics["models"]["embeddings"]
probe_accuracy = model["probe"]["infection_state"]["accuracy"]
smoothness = model["temporal_smoothness"]["ratio"]
print(f"held-out probe accuracy {probe_accuracy:.3f}, temporal smoothness {smoothness:.3f}")
assert 0.0 <= probe_accuracy <= 1.0 and np.isfinite(smoothness)

# %%
(png,) = plot_scatter(embeddings, OUT / "figures", key="X_pca", color_by=["infection_state"])
print(f"wrote {png}")

# %% [markdown]
# Next: `dynaclr explore embeddings.zarr --plate plate.zarr` writes an interactive page of
# this embedding, and `infection_analysis.py` turns embeddings into infection-timing figures.
