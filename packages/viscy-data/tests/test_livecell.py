"""LiveCellDataModule on a tiny COCO JSON + TIFF data set written by the test."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

pytest.importorskip("pycocotools")
tifffile = pytest.importorskip("tifffile")

from viscy_data.livecell import LiveCellDataModule, LiveCellTestDataset  # noqa: E402

H, W = 24, 32


def square(x0: int, y0: int, size: int) -> list[float]:
    """COCO polygon of a square (x, y pairs)."""
    x1, y1 = x0 + size, y0 + size
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def write_split(root, name: str, n_images: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(n_images):
        file_name = f"{name}_{i}.tif"
        tifffile.imwrite(root / "images" / file_name, rng.integers(0, 60000, (H, W), np.uint16))
        images.append({"id": i + 1, "file_name": file_name, "height": H, "width": W})
        for j, (x0, y0) in enumerate([(2, 2), (14, 10)]):
            annotations.append(
                {
                    "id": 100 * (i + 1) + j,
                    "image_id": i + 1,
                    "category_id": 1,
                    "segmentation": [square(x0, y0, 6)],
                    "bbox": [x0, y0, 6, 6],
                    "area": 36.0,
                    "iscrowd": 0,
                }
            )
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "cell"}],
    }
    path = root / f"{name}.json"
    path.write_text(json.dumps(coco))
    return path, images


@pytest.fixture(scope="session")
def livecell_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("livecell")
    (root / "images").mkdir()
    write_split(root, "train", 4, seed=0)
    write_split(root, "val", 2, seed=1)
    write_split(root, "test", 2, seed=2)
    return root


def make_module(root, **kwargs) -> LiveCellDataModule:
    settings = dict(
        train_val_images=root / "images",
        test_images=root / "images",
        train_annotations=root / "train.json",
        val_annotations=root / "val.json",
        test_annotations=root / "test.json",
        batch_size=2,
        num_workers=0,
        pin_memory=False,
    )
    settings.update(kwargs)
    return LiveCellDataModule(**settings)


class TinyModule(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.test_foreground: list[float] = []

    def training_step(self, batch, batch_idx):
        assert batch["source"].shape == (2, 1, 1, H, W)
        return self.layer(batch["source"].mean().view(1, 1)).sum()

    def validation_step(self, batch, batch_idx):
        assert batch["source"].ndim == 5

    def test_step(self, batch, batch_idx):
        masks = batch["detections"]["masks"]
        assert masks.dtype == torch.bool and masks.shape[:1] == batch["source"].shape[:1]
        self.test_foreground.append(float(masks.any(dim=1).float().mean()))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_setup_reads_images_listed_in_annotations(livecell_root):
    dm = make_module(livecell_root)
    dm.setup("fit")
    try:
        assert len(dm.train_dataset) == 4
        assert len(dm.val_dataset) == 2
        sample = dm.train_dataset[1]
        expected = tifffile.imread(livecell_root / "images" / "train_1.tif").astype(np.float32)
        assert sample["source"].shape == (1, 1, H, W)
        np.testing.assert_array_equal(sample["source"][0, 0].numpy(), expected)
        np.testing.assert_array_equal(sample["target"].numpy(), sample["source"].numpy())
        # the second read comes from the cache and is the same image
        assert 1 in dm.caches["train"]
        np.testing.assert_array_equal(dm.train_dataset[1]["source"][0, 0].numpy(), expected)
    finally:
        dm.teardown("fit")


def test_test_split_rasterizes_annotations(livecell_root):
    dm = make_module(livecell_root)
    dm.setup("test")
    sample = dm.test_dataset[0]
    assert set(sample) == {"source", "file_name", "detections"}  # the 0.1.0 test sample
    detections = sample["detections"]
    masks = detections["masks"].numpy()
    assert masks.dtype == bool and masks.shape == (2, H, W)
    assert 30 <= masks[0].sum() <= 49  # a 6x6 square, give or take the polygon rule
    assert masks[0][4, 4] and masks[1][12, 16] and not masks[0][12, 16]
    assert detections["labels"].dtype == torch.uint8
    assert detections["labels"].tolist() == [0, 0]
    boxes = detections["boxes"]
    assert boxes.dtype == torch.float32 and boxes.shape == (2, 4)
    for box, mask in zip(boxes.tolist(), masks, strict=True):  # x0, y0, x1, y1 around the mask
        ys, xs = np.nonzero(mask)
        assert box[0] <= xs.min() and xs.max() < box[2]
        assert box[1] <= ys.min() and ys.max() < box[3]
    with_target = LiveCellTestDataset(
        livecell_root / "images", None, dm.test_annotations, load_target=True
    )[0]
    assert set(with_target) == {"source", "file_name", "target"}
    np.testing.assert_array_equal(with_target["target"].numpy(), with_target["source"].numpy())


def test_test_loader_stacks_detections(livecell_root):
    dm = make_module(livecell_root)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["detections"]["boxes"].shape[0] == batch["source"].shape[0]
    assert batch["detections"]["masks"].shape[-2:] == (H, W)
    assert isinstance(batch["file_name"], list) and isinstance(batch["file_name"][0], str)


def test_fit_and_test_with_trainer(livecell_root):
    dm = make_module(livecell_root)
    model = TinyModule()
    trainer = Trainer(
        accelerator="cpu",
        fast_dev_run=True,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert dm.caches == {}
    trainer.test(model, datamodule=dm)
    assert len(model.test_foreground) == 1
    assert 0.0 < model.test_foreground[0] < 0.5


def test_missing_image_is_named_at_setup(livecell_root, tmp_path):
    coco = json.loads((livecell_root / "val.json").read_text())
    coco["images"][1]["file_name"] = "not_there.tif"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(coco))
    dm = make_module(livecell_root, val_annotations=bad)
    with pytest.raises(FileNotFoundError, match="not_there.tif"):
        dm.setup("fit")


def test_stage_without_its_paths_is_reported(livecell_root):
    dm = make_module(livecell_root, test_annotations=None)
    with pytest.raises(ValueError, match="test_annotations"):
        dm.setup("test")


def test_missing_extra_is_named(livecell_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    with pytest.raises(ImportError, match=r"viscy-data\[livecell\]"):
        make_module(livecell_root)


def test_training_keeps_the_last_partial_batch(livecell_root):
    # 0.1.0: 4 training images in batches of 3 give 3, 1
    dm = make_module(livecell_root, batch_size=3)
    dm.setup("fit")
    try:
        assert [len(b["source"]) for b in dm.train_dataloader()] == [3, 1]
    finally:
        dm.teardown("fit")
