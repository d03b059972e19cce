"""Run inside a venv holding viscy-data without extras.

``import viscy_data`` must work, and each feature that needs an extra must raise an
ImportError whose message names that extra, when the feature is used (not when imported).
"""

import importlib.util
import sys
import tempfile
from pathlib import Path

EXTRA_MODULES = {"tensorstore": "triplet", "tensordict": "mmap", "pycocotools": "livecell"}


def _mmapped_data_module():
    from viscy_data import MmappedDataModule

    MmappedDataModule(
        data_path=Path("plate.zarr"),
        channels="Phase3D",
        batch_size=2,
        num_workers=0,
        split_ratio=0.5,
        preprocess_transforms=[],
        train_cpu_transforms=[],
        val_cpu_transforms=[],
        train_gpu_transforms=[],
        val_gpu_transforms=[],
    )


def _livecell_data_module():
    from viscy_data import LiveCellDataModule

    LiveCellDataModule(train_val_images=Path("images"), train_annotations=Path("train.json"))


def _livecell_test_dataset():
    from viscy_data import LiveCellTestDataset

    with tempfile.TemporaryDirectory() as tmp:
        LiveCellTestDataset(Path(tmp), None, Path(tmp) / "test.json")


def _tensorstore_reader():
    # TripletDataModule reads through PatchReader, which falls back to zarr-python without
    # tensorstore; asking for the tensorstore backend explicitly needs the [triplet] extra.
    from viscy_data._reader import PatchReader

    PatchReader("plate.zarr", backend="tensorstore")


# (feature, extra it needs, call that uses it)
CHECKS = [
    ("MmappedDataModule", "mmap", _mmapped_data_module),
    ("LiveCellDataModule", "livecell", _livecell_data_module),
    ("LiveCellTestDataset", "livecell", _livecell_test_dataset),
    ("PatchReader(backend='tensorstore')", "triplet", _tensorstore_reader),
]


def main() -> None:
    for module in EXTRA_MODULES:
        if importlib.util.find_spec(module) is not None:
            sys.exit(f"{module} is installed: this is not a minimal environment")

    import viscy_data
    from viscy_data._imports import optional_import

    # every public name resolves without extras (names of modules not written yet are listed)
    absent = sorted(
        {m for m in viscy_data._EXPORTS.values() if not importlib.util.find_spec(f"viscy_data.{m}")}
    )
    if absent:
        print(f"note: viscy_data modules not present, their names are not checked: {absent}")
    resolved = 0
    for name, module in viscy_data._EXPORTS.items():
        if module in absent:
            continue
        try:
            getattr(viscy_data, name)
        except ModuleNotFoundError as err:
            if not (err.name or "").startswith("viscy_data."):
                sys.exit(f"viscy_data.{name} needs {err.name!r} to import: {err}")
            print(f"note: viscy_data.{name} needs {err.name}, which is not present")
            continue
        resolved += 1

    for module, extra in EXTRA_MODULES.items():
        try:
            optional_import(module)
        except ImportError as err:
            assert f"viscy-data[{extra}]" in str(err), err
        else:
            sys.exit(f"optional_import({module!r}) did not raise")

    for name, extra, call in CHECKS:
        try:
            call()
        except ImportError as err:
            assert f"viscy-data[{extra}]" in str(err), (name, err)
            print(f"ok: {name} asks for viscy-data[{extra}]")
        else:
            sys.exit(f"{name} ran without its extra [{extra}]")
    print(
        f"minimal-dependency check passed (viscy_data imported without extras, "
        f"{resolved} public names resolved, {len(CHECKS)} guarded features)"
    )


if __name__ == "__main__":
    main()
