"""Run inside a venv holding viscy-data without extras."""

import importlib.util
import sys

for extra_module in ("tensorstore", "tensordict", "pycocotools"):
    if importlib.util.find_spec(extra_module) is not None:
        sys.exit(f"{extra_module} is installed: this is not a minimal environment")

import viscy_data  # noqa: E402
from viscy_data._imports import optional_import  # noqa: E402

for module, extra in [
    ("tensorstore", "triplet"),
    ("tensordict", "mmap"),
    ("pycocotools", "livecell"),
]:
    try:
        optional_import(module)
    except ImportError as err:
        assert f"viscy-data[{extra}]" in str(err), err
    else:
        sys.exit(f"optional_import({module!r}) did not raise")

checks = getattr(viscy_data, "_MINIMAL_DEPS_CHECKS", [])
for name, extra, call in checks:
    try:
        call()
    except ImportError as err:
        assert f"viscy-data[{extra}]" in str(err), (name, err)
        print(f"ok: {name} asks for viscy-data[{extra}]")
    else:
        sys.exit(f"{name} ran without its extra [{extra}]")
print(
    f"minimal-dependency check passed (viscy_data imported without extras, {len(checks)} guarded features)"
)
