"""viscy-models: state-dict keys/shapes and eval-mode outputs with the oracle's weights.

Oracle side: build the 0.1.0 class (seed 0), perturb every floating parameter and buffer
(seeded) so that zero-initialised layers and untouched BatchNorm statistics cannot hide a
difference, and record the state dict, the input and the eval-mode output (seed 1 before
the forward pass, for models that sample). Our side: build ours with the same arguments,
compare keys and shapes, load the oracle's state dict strictly and compare outputs.
"""

from __future__ import annotations

import torch
from _common import error_name, max_abs_diff, resolve, structure, to_plain

ATOL = 1e-5
RTOL = 1e-5

M = "viscy_models."


def case(name, cls, kwargs, inputs, forward_kwargs=None, fixed=None, deviation=None):
    return {
        "name": name,
        "class": M + cls,
        "kwargs": kwargs,
        "inputs": inputs,
        "forward_kwargs": forward_kwargs or {},
        "fixed": fixed,
        "deviation": deviation,
    }


CASES = [
    # Unet2d: 0.1.0 takes and returns (B, C, 1, H, W)
    case("Unet2d default", "Unet2d", {}, [(1, 1, 1, 64, 64)], fixed="returned (B, C, H, W)"),
    case("Unet2d residual", "Unet2d", {"residual": True}, [(1, 1, 1, 64, 64)]),
    case(
        "Unet2d blocks3 reg",
        "Unet2d",
        {"num_blocks": 3, "task": "reg", "in_channels": 2},
        [(2, 2, 1, 32, 32)],
    ),
    case("Unet25d default", "Unet25d", {}, [(1, 1, 5, 64, 64)]),
    case(
        "Unet25d stack7 residual",
        "Unet25d",
        {
            "in_channels": 2,
            "out_channels": 1,
            "in_stack_depth": 7,
            "residual": True,
            "num_blocks": 3,
        },
        [(1, 2, 7, 32, 32)],
        fixed="outputs differed",
    ),
    case(
        "Unet25d out5",
        "Unet25d",
        {"in_stack_depth": 5, "out_stack_depth": 5, "dropout": 0.0},
        [(1, 1, 5, 32, 32)],
    ),
    case("Unet3d default", "Unet3d", {}, [(1, 1, 16, 32, 32)], fixed="23.3M vs 35.3M parameters"),
    case(
        "Unet3d depth3 mult16",
        "Unet3d",
        {"in_channels": 2, "out_channels": 2, "depth": 3, "mult_chan": 16},
        [(1, 2, 8, 32, 32)],
        fixed="other layers",
    ),
    case(
        "Unet3d stack8", "Unet3d", {"in_stack_depth": 8}, [(1, 1, 8, 32, 32)], fixed="other layers"
    ),
    case("UNeXt2 default", "UNeXt2", {}, [(1, 1, 5, 64, 64)]),
    case(
        "UNeXt2 atto 3d",
        "UNeXt2",
        {
            "in_channels": 1,
            "out_channels": 2,
            "in_stack_depth": 10,
            "backbone": "convnextv2_atto",
            "decoder_mode": "pixelshuffle",
        },
        [(1, 1, 10, 64, 64)],
    ),
    case(
        "UNeXt2 deconv",
        "UNeXt2",
        {"backbone": "convnextv2_atto", "decoder_mode": "deconv", "in_stack_depth": 5},
        [(1, 1, 5, 64, 64)],
    ),
    case(
        "UNeXt2 out_stack3 blocks1",
        "UNeXt2",
        {
            "backbone": "convnextv2_atto",
            "in_stack_depth": 5,
            "out_stack_depth": 3,
            "decoder_conv_blocks": 1,
            "in_channels": 2,
            "out_channels": 3,
        },
        [(1, 2, 5, 64, 64)],
    ),
    case(
        "FCMAE default",
        "FullyConvolutionalMAE",
        {"in_channels": 1, "out_channels": 1},
        [(1, 1, 5, 64, 64)],
    ),
    case(
        "FCMAE headconv",
        "FullyConvolutionalMAE",
        {
            "in_channels": 1,
            "out_channels": 2,
            "head_conv": True,
            "pretraining": False,
            "encoder_blocks": [2, 2, 6, 2],
            "dims": [48, 96, 192, 384],
        },
        [(1, 1, 5, 64, 64)],
        fixed="13 shape mismatches",
    ),
    case(
        "FCMAE small pretraining",
        "FullyConvolutionalMAE",
        {
            "in_channels": 2,
            "out_channels": 1,
            "encoder_blocks": [1, 1, 1, 1],
            "dims": [16, 32, 64, 128],
            "decoder_conv_blocks": 2,
        },
        [(1, 2, 5, 64, 64)],
    ),
    case(
        "ContrastiveEncoder convnext_tiny",
        "ContrastiveEncoder",
        {
            "backbone": "convnext_tiny",
            "in_channels": 2,
            "in_stack_depth": 15,
            "stem_kernel_size": [5, 4, 4],
            "stem_stride": [5, 4, 4],
            "embedding_dim": 768,
            "projection_dim": 128,
        },
        [(2, 2, 15, 64, 64)],
    ),
    case(
        "ContrastiveEncoder convnext_tiny 2d",
        "ContrastiveEncoder",
        {
            "backbone": "convnext_tiny",
            "in_channels": 1,
            "in_stack_depth": 1,
            "stem_kernel_size": [1, 4, 4],
            "stem_stride": [1, 4, 4],
            "embedding_dim": 768,
            "projection_dim": 32,
        },
        [(2, 1, 1, 64, 64)],
    ),
    case(
        "ContrastiveEncoder convnextv2 stack5",
        "ContrastiveEncoder",
        {"backbone": "convnextv2_tiny", "in_channels": 2, "in_stack_depth": 5},
        [(2, 2, 5, 64, 64)],
    ),
    case(
        "ContrastiveEncoder resnet50",
        "ContrastiveEncoder",
        {
            "backbone": "resnet50",
            "in_channels": 2,
            "in_stack_depth": 16,
            "stem_kernel_size": [4, 4, 4],
            "stem_stride": [4, 4, 4],
            "embedding_dim": 2048,
            "projection_dim": 128,
        },
        [(2, 2, 16, 64, 64)],
    ),
    case(
        "ResNet3dEncoder resnet18",
        "ResNet3dEncoder",
        {"backbone": "resnet18", "in_channels": 1, "embedding_dim": 512, "projection_dim": 128},
        [(2, 1, 16, 32, 32)],
    ),
    case(
        "ResNet3dEncoder resnet10",
        "ResNet3dEncoder",
        {"backbone": "resnet10", "in_channels": 2},
        [(2, 2, 16, 32, 32)],
    ),
    case(
        "BetaVae25D resnet50",
        "BetaVae25D",
        {
            "backbone": "resnet50",
            "in_channels": 2,
            "in_stack_depth": 16,
            "latent_dim": 1024,
            "input_spatial_size": [128, 128],
        },
        [(1, 2, 16, 128, 128)],
        fixed="outputs differed",
    ),
    case(
        "BetaVae25D convnext stack16 stages3",
        "BetaVae25D",
        {
            "backbone": "convnext_tiny",
            "in_channels": 2,
            "in_stack_depth": 16,
            "out_stack_depth": 16,
            "input_spatial_size": [128, 128],
            "latent_dim": 512,
            "decoder_stages": 3,
        },
        [(1, 2, 16, 128, 128)],
        fixed="176 missing keys",
    ),
    case(
        "BetaVae25D in1 stack5",
        "BetaVae25D",
        {
            "in_channels": 1,
            "in_stack_depth": 5,
            "out_stack_depth": 5,
            "input_spatial_size": [64, 64],
            "latent_dim": 64,
            "stem_kernel_size": [5, 4, 4],
            "stem_stride": [5, 4, 4],
        },
        [(1, 1, 5, 64, 64)],
        fixed="rejected",
    ),
    case(
        "BetaVae25D in1 stack5 defaults",
        "BetaVae25D",
        {"in_channels": 1, "in_stack_depth": 5},
        [(1, 1, 5, 256, 256)],
        fixed="rejected",
    ),
    case(
        "BetaVaeMonai 2d",
        "BetaVaeMonai",
        {
            "spatial_dims": 2,
            "in_shape": [1, 64, 64],
            "out_channels": 1,
            "latent_size": 128,
            "channels": [16, 32, 64],
            "strides": [2, 2, 2],
        },
        [(1, 1, 64, 64)],
    ),
    case(
        "BetaVaeMonai 3d",
        "BetaVaeMonai",
        {
            "spatial_dims": 3,
            "in_shape": [2, 8, 32, 32],
            "out_channels": 2,
            "latent_size": 16,
            "channels": [8, 16],
            "strides": [2, 2],
        },
        [(1, 2, 8, 32, 32)],
    ),
    case("MLP bn relu", "MLP", {"in_dims": 16, "hidden_dims": 32, "out_dims": 8}, [(4, 16)]),
    case(
        "MLP ln gelu 2 hidden",
        "MLP",
        {"in_dims": 16, "hidden_dims": [32, 24], "out_dims": 8, "norm": "ln", "activation": "gelu"},
        [(4, 16)],
    ),
    case(
        "MLP classifier cosine",
        "MLP",
        {"in_dims": 16, "hidden_dims": 32, "num_classes": 3},
        [(4, 16)],
    ),
    case(
        "MLP classifier linear",
        "MLP",
        {"in_dims": 16, "hidden_dims": 32, "num_classes": 3, "cosine_classifier": False},
        [(4, 16)],
    ),
    case("CosineClassifier", "CosineClassifier", {"in_dim": 16, "num_classes": 5}, [(4, 16)]),
    case(
        "PixelToVoxelHead",
        "components.PixelToVoxelHead",
        {
            "in_channels": 32,
            "out_channels": 2,
            "out_stack_depth": 5,
            "expansion_ratio": 4,
            "pool": True,
        },
        [(1, 32, 16, 16)],
    ),
    case(
        "PixelToVoxelShuffleHead",
        "components.PixelToVoxelShuffleHead",
        {"in_channels": 40, "out_channels": 2, "out_stack_depth": 5},
        [(1, 40, 8, 8)],
    ),
    case("UnsqueezeHead", "components.UnsqueezeHead", {}, [(1, 3, 8, 8)]),
    case(
        "StemDepthtoChannels",
        "components.StemDepthtoChannels",
        {"in_channels": 2, "in_stack_depth": 10, "in_channels_encoder": 96},
        [(1, 2, 10, 32, 32)],
    ),
    case(
        "UNeXt2Stem",
        "components.UNeXt2Stem",
        {"in_channels": 1, "out_channels": 96, "kernel_size": [5, 4, 4], "in_stack_depth": 5},
        [(1, 1, 5, 32, 32)],
    ),
    case(
        "ConvBlock2D",
        "components.ConvBlock2D",
        {"in_filters": 4, "out_filters": 8},
        [(1, 4, 16, 16)],
    ),
    case(
        "ConvBlock3D",
        "components.ConvBlock3D",
        {"in_filters": 4, "out_filters": 8},
        [(1, 4, 4, 16, 16)],
    ),
]


def _perturb(model: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * noise)
            else:
                tensor.add_(0.02 * noise)


def _inputs(case_: dict) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    return [torch.randn(shape, generator=gen) for shape in case_["inputs"]]


def _forward(model, x, case_):
    torch.manual_seed(1)
    with torch.no_grad():
        return to_plain(model(x, **case_["forward_kwargs"]))


def oracle(case_: dict) -> dict:
    cls = resolve(case_["class"])
    torch.manual_seed(0)
    model = cls(**case_["kwargs"])
    _perturb(model)
    model.eval()
    result = {
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()},
        "n_params": sum(p.numel() for p in model.parameters()),
        "inputs": _inputs(case_),
        "outputs": [],
    }
    for x in result["inputs"]:
        try:
            result["outputs"].append(_forward(model, x, case_))
        except Exception as exc:
            result["outputs"].append({"error": error_name(exc)})
    return result


def ours(case_: dict, ref: dict) -> dict:
    row = {
        "section": "models",
        "name": case_["name"],
        "class": case_["class"],
        "config": case_["kwargs"],
    }
    if "error" in ref:
        row.update(status="skip", note=f"oracle rejects: {ref['error'][:120]}")
        try:
            resolve(case_["class"])(**case_["kwargs"])
            row.update(status="DIFF", note=row["note"] + "; ours builds it")
        except Exception as exc:
            row.update(status="ok", note=f"both reject ({type(exc).__name__})")
        return row
    model = resolve(case_["class"])(**case_["kwargs"])
    ours_sd = model.state_dict()
    ref_sd = ref["state_dict"]
    missing = sorted(set(ref_sd) - set(ours_sd))
    unexpected = sorted(set(ours_sd) - set(ref_sd))
    mismatched = sorted(
        k for k in set(ref_sd) & set(ours_sd) if tuple(ref_sd[k].shape) != tuple(ours_sd[k].shape)
    )
    n_params = sum(p.numel() for p in model.parameters())
    row.update(
        keys_equal=not missing and not unexpected,
        shapes_equal=not mismatched,
        n_params=(n_params, ref["n_params"]),
    )
    if missing or unexpected or mismatched:
        row.update(
            status="DIFF",
            note=f"{len(missing)} missing, {len(unexpected)} unexpected, "
            f"{len(mismatched)} shape mismatches; first: "
            f"{(missing + unexpected + mismatched)[:3]}",
        )
        return row
    model.load_state_dict(ref_sd, strict=True)
    model.eval()
    diffs, notes = [], []
    for x, ref_out in zip(ref["inputs"], ref["outputs"], strict=True):
        try:
            out = _forward(model, x, case_)
        except Exception as exc:
            out = {"error": error_name(exc)}
        if isinstance(ref_out, dict) and "error" in ref_out:
            same_error = isinstance(out, dict) and "error" in out
            notes.append(
                f"oracle forward raises {ref_out['error'][:80]}"
                + ("" if same_error else "; ours does not")
            )
            diffs.append(0.0 if same_error else None)
            continue
        d = max_abs_diff(ref_out, out)
        if d is None:
            notes.append(f"output structure {structure(out)} vs oracle {structure(ref_out)}")
        diffs.append(d)
        scale = max((float(t.abs().max()) for t in _tensors(ref_out)), default=1.0)
        if d is not None and d > ATOL + RTOL * scale:
            notes.append(f"max|diff| {d:.3g} (oracle max|out| {scale:.3g})")
    row["max_abs_diff"] = None if None in diffs else max(diffs, default=0.0)
    bad = any(
        n.startswith(("output structure", "max|diff|")) or n.endswith("does not") for n in notes
    )
    if bad:
        row.update(status="deviation" if case_["deviation"] else "DIFF", note="; ".join(notes))
    else:
        row.update(
            status="fixed" if case_["fixed"] else "ok",
            note="; ".join(notes) or (f"was: {case_['fixed']}" if case_["fixed"] else ""),
        )
    return row


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
