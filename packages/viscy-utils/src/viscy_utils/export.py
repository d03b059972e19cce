"""Export a trained model to ONNX with a dynamic batch axis."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from viscy_utils._imports import optional_import


def export_onnx(
    model: torch.nn.Module,
    export_path: str | Path,
    example_input: torch.Tensor,
    opset_version: int | None = None,
    overwrite: bool = False,
    dynamo: bool = True,
    output_names: Sequence[str] | None = None,
) -> Path:
    """Write ``model`` as an ONNX graph whose input and output batch axis is dynamic.

    Parameters
    ----------
    model : torch.nn.Module
        Taking one tensor and returning a tensor (or a tuple of tensors).
    export_path : str or Path
        The ``.onnx`` file to write (via a temporary file, then renamed).
    example_input : torch.Tensor
        An input of the right shape, e.g. ``(B, C, Z, Y, X)``; B may be any size.
    opset_version : int, optional
        ONNX opset; the exporter's default when None.
    overwrite : bool
        Replace an existing file.
    dynamo : bool
        Use the ``torch.export``-based exporter (needs ``onnxscript``) rather
        than the TorchScript one.
    output_names : list of str, optional
        Names of the graph's outputs, one per returned tensor (``["output"]`` when None).

    Returns
    -------
    Path
        The written file.
    """
    optional_import("onnx", "export")
    if dynamo:
        optional_import("onnxscript", "export")
    export_path = Path(export_path)
    if export_path.exists() and not overwrite:
        raise FileExistsError(f"{export_path} exists; pass overwrite=True to replace it")
    export_path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=export_path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        names = list(output_names) if output_names else ["output"]
        kwargs: dict = {"input_names": ["input"], "output_names": names}
        if opset_version is not None:
            kwargs["opset_version"] = opset_version
        if dynamo:
            batch = torch.export.Dim("batch", min=1)
            kwargs["dynamic_shapes"] = ({0: batch},)
        else:
            kwargs["dynamic_axes"] = {"input": {0: "batch"}, **{n: {0: "batch"} for n in names}}
        with torch.no_grad():
            torch.onnx.export(model, (example_input,), tmp, dynamo=dynamo, **kwargs)
        os.replace(tmp, export_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        model.train(was_training)
    return export_path


def verify_onnx(
    model: torch.nn.Module,
    onnx_path: str | Path,
    example_input: torch.Tensor,
    atol: float = 1e-4,
) -> float:
    """Run an exported graph with onnxruntime and compare it with ``model``.

    Parameters
    ----------
    model : torch.nn.Module
        The model that was exported (run in eval mode on CPU).
    onnx_path : str or Path
        The ``.onnx`` file.
    example_input : torch.Tensor
        Input given to both.
    atol : float
        Largest absolute difference accepted.

    Returns
    -------
    float
        The largest absolute difference between the two outputs.

    Raises
    ------
    AssertionError
        When the outputs differ by more than ``atol`` (or differ in shape).
    """
    ort = optional_import("onnxruntime", "export")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            expected = model(example_input.cpu())
    finally:
        model.train(was_training)
    if isinstance(expected, tuple | list):
        expected = expected[0]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (actual, *_) = session.run(None, {name: example_input.cpu().numpy()})
    expected_np = expected.detach().cpu().numpy()
    if actual.shape != expected_np.shape:
        raise AssertionError(
            f"ONNX output shape {actual.shape} differs from torch {expected_np.shape} ({onnx_path})"
        )
    diff = float(abs(actual - expected_np).max()) if actual.size else 0.0
    if not diff <= atol:
        raise AssertionError(
            f"ONNX output of {onnx_path} differs from torch by {diff:.3g} (> atol={atol})"
        )
    return diff
