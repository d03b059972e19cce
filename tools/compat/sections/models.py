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


def case(name, cls, kwargs, inputs, forward_kwargs=None, fixed=None, deviation=None, probe=None):
    """``inputs``: one entry per forward call; a shape, or a list of shapes passed as
    separate arguments (``model(a, b)``), or ``{"list": shapes}`` passed as one list.
    ``probe``: name of a function ``(model, inputs) -> outputs`` run instead of forward."""
    return {
        "name": name,
        "class": M + cls,
        "kwargs": kwargs,
        "inputs": inputs,
        "forward_kwargs": forward_kwargs or {},
        "fixed": fixed,
        "deviation": deviation,
        "probe": probe,
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
        deviation="0.1.0 builds it and fails at every forward pass; ours raises at construction",
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
        fixed="outputs differed (head blur: replicate padding, none in the parameter-free head)",
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
        fixed="outputs differed (the parameter-free head did not blur)",
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
    case(
        "MLP bn relu",
        "MLP",
        {"in_dims": 16, "hidden_dims": 32, "out_dims": 8},
        [(4, 16)],
        fixed="other layers (no final norm, 'layers' not 'backbone')",
    ),
    case(
        "MLP ln gelu 2 hidden",
        "MLP",
        {"in_dims": 16, "hidden_dims": [32, 24], "out_dims": 8, "norm": "ln", "activation": "gelu"},
        [(4, 16)],
        fixed="other layers",
    ),
    case(
        "MLP classifier cosine",
        "MLP",
        {"in_dims": 16, "hidden_dims": 32, "num_classes": 3},
        [(4, 16)],
        fixed="'classifier' not 'head'; 'scale' not 'log_scale'",
        probe="mlp_encode",
    ),
    case(
        "MLP classifier linear",
        "MLP",
        {"in_dims": 16, "hidden_dims": 32, "num_classes": 3, "cosine_classifier": False},
        [(4, 16)],
        fixed="'classifier' not 'head'",
        probe="mlp_encode",
    ),
    case(
        "CosineClassifier",
        "CosineClassifier",
        {"in_dim": 16, "num_classes": 5},
        [(4, 16)],
        fixed="'scale' not 'log_scale'",
    ),
    case(
        "PixelToVoxelHead in32",
        "components.PixelToVoxelHead",
        {
            "in_channels": 32,
            "out_channels": 2,
            "out_stack_depth": 5,
            "expansion_ratio": 4,
            "pool": True,
        },
        [(1, 32, 16, 16), (1, 28, 16, 16)],
        fixed="rejected at construction (0.1.0 builds a head for 28-channel inputs)",
    ),
    case(
        "PixelToVoxelShuffleHead in40",
        "components.PixelToVoxelShuffleHead",
        {"in_channels": 40, "out_channels": 2, "out_stack_depth": 5},
        [(1, 40, 8, 8), (1, 160, 8, 8)],
        fixed="rejected at construction (0.1.0 does not use in_channels)",
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

ATTO = {"backbone": "convnextv2_atto", "in_stack_depth": 5}
CASES += [
    case(
        "UNeXt2 deconv tiny out4",
        "UNeXt2",
        {"decoder_mode": "deconv", "in_stack_depth": 5, "out_stack_depth": 4},
        [(1, 1, 5, 64, 64)],
        fixed="other layers (27 missing, 78 unexpected keys)",
    ),
    case(
        "UNeXt2 deconv tiny out4 batch",
        "UNeXt2",
        {
            "decoder_mode": "deconv",
            "in_stack_depth": 5,
            "out_stack_depth": 4,
            "decoder_norm_layer": "batch",
        },
        [(1, 1, 5, 64, 64)],
        fixed="decoder_norm_layer was not used",
    ),
    case(
        "UNeXt2 atto pre_conv",
        "UNeXt2",
        {**ATTO, "decoder_upsample_pre_conv": True},
        [(1, 1, 5, 64, 64)],
    ),
    case(
        "UNeXt2 atto head_pool ratio2",
        "UNeXt2",
        {**ATTO, "head_pool": True, "head_expansion_ratio": 2, "in_channels": 3},
        [(1, 3, 5, 64, 64)],
        fixed="head blur padded by replication",
    ),
    case(
        "UNeXt2 convnext_atto stack15 k3",
        "UNeXt2",
        {
            "backbone": "convnext_atto",
            "in_stack_depth": 15,
            "stem_kernel_size": [3, 4, 4],
            "out_stack_depth": 1,
        },
        [(1, 1, 15, 64, 64)],
    ),
    case(
        "FCMAE 2d stack1",
        "FullyConvolutionalMAE",
        {
            "in_channels": 1,
            "out_channels": 1,
            "encoder_blocks": [1, 1, 1, 1],
            "dims": [16, 32, 64, 128],
            "in_stack_depth": 1,
            "stem_kernel_size": [1, 4, 4],
            "pretraining": False,
        },
        [(1, 1, 1, 64, 64), (1, 1, 64, 64)],
        deviation="ours also takes (B, C, Y, X) input; 0.1.0 needs the Z axis",
    ),
    case(
        "FCMAE headconv nopool ratio2",
        "FullyConvolutionalMAE",
        {
            "in_channels": 1,
            "out_channels": 1,
            "encoder_blocks": [1, 1, 1, 1],
            "dims": [16, 32, 64, 128],
            "head_conv": True,
            "head_conv_pool": False,
            "head_conv_expansion_ratio": 2,
        },
        [(1, 1, 5, 64, 64)],
    ),
    case(
        "BetaVae25D deconv instance",
        "BetaVae25D",
        {
            "in_channels": 1,
            "in_stack_depth": 5,
            "out_stack_depth": 5,
            "input_spatial_size": [64, 64],
            "latent_dim": 32,
            "stem_kernel_size": [5, 4, 4],
            "stem_stride": [5, 4, 4],
            "upsample_mode": "deconv",
            "norm_name": "instance",
        },
        [(1, 1, 5, 64, 64)],
        fixed="other layers (MONAI UpSample deconv with bias, two residual units)",
    ),
    case(
        "MLP silu dropout no hidden",
        "MLP",
        {"in_dims": 8, "hidden_dims": [], "out_dims": 4, "activation": "silu", "dropout": 0.3},
        [(3, 8)],
    ),
    case(
        "MLP ln dropout 2 hidden classifier",
        "MLP",
        {"in_dims": 8, "hidden_dims": [16, 12], "num_classes": 4, "norm": "ln", "dropout": 0.2},
        [(3, 8)],
        probe="mlp_encode",
    ),
    case("MLP projection without out_dims", "MLP", {"in_dims": 8, "hidden_dims": 4}, [(3, 8)]),
    case("MLP bad norm", "MLP", {"in_dims": 8, "hidden_dims": 4, "out_dims": 2, "norm": "gn"}, []),
    case(
        "CosineClassifier fixed scale",
        "CosineClassifier",
        {"in_dim": 8, "num_classes": 3, "init_scale": 10.0, "learn_scale": False},
        [(4, 8), (2, 5, 8)],
        deviation="(B, N, D) input: ours normalises the last axis, 0.1.0 axis 1",
    ),
    case(
        "PixelToVoxelHead pool",
        "components.PixelToVoxelHead",
        {
            "in_channels": 112,
            "out_channels": 1,
            "out_stack_depth": 5,
            "expansion_ratio": 4,
            "pool": True,
        },
        [(1, 112, 8, 8)],
        fixed="blur padded by replication",
    ),
    case(
        "PixelToVoxelHead nopool out2 d3",
        "components.PixelToVoxelHead",
        {
            "in_channels": 80,
            "out_channels": 2,
            "out_stack_depth": 3,
            "expansion_ratio": 2,
            "pool": False,
        },
        [(2, 80, 8, 8)],
    ),
    case(
        "PixelToVoxelShuffleHead pool",
        "components.PixelToVoxelShuffleHead",
        {"in_channels": 160, "out_channels": 2, "out_stack_depth": 5, "pool": True},
        [(1, 160, 8, 8)],
        fixed="blur padded by replication",
    ),
    case(
        "PixelToVoxelShuffleHead xy2",
        "components.PixelToVoxelShuffleHead",
        {"in_channels": 12, "out_channels": 1, "out_stack_depth": 3, "xy_scaling": 2},
        [(1, 12, 8, 8)],
        fixed="no xy_scaling",
    ),
    case(
        "UNeXt2UpStage pixelshuffle",
        "components.UNeXt2UpStage",
        {
            "in_channels": 64,
            "skip_channels": 16,
            "out_channels": 32,
            "scale_factor": 2,
            "mode": "pixelshuffle",
            "conv_blocks": 2,
            "norm_name": "batch",
            "upsample_pre_conv": None,
        },
        [[(1, 64, 4, 4), (1, 16, 8, 8)]],
        fixed="missing",
    ),
    case(
        "UNeXt2UpStage pixelshuffle x4 pre_conv",
        "components.UNeXt2UpStage",
        {
            "in_channels": 64,
            "skip_channels": 8,
            "out_channels": 16,
            "scale_factor": 4,
            "mode": "pixelshuffle",
            "conv_blocks": 1,
            "norm_name": "instance",
            "upsample_pre_conv": "default",
        },
        [[(1, 64, 4, 4), (1, 8, 16, 16)]],
        fixed="missing",
    ),
    case(
        "UNeXt2UpStage deconv",
        "components.UNeXt2UpStage",
        {
            "in_channels": 64,
            "skip_channels": 32,
            "out_channels": 32,
            "scale_factor": 2,
            "mode": "deconv",
            "conv_blocks": 3,
            "norm_name": "batch",
            "upsample_pre_conv": None,
        },
        [[(1, 64, 4, 4), (1, 32, 8, 8)]],
        fixed="missing",
    ),
    case(
        "UNeXt2UpStage deconv misfit",
        "components.UNeXt2UpStage",
        {
            "in_channels": 64,
            "skip_channels": 16,
            "out_channels": 32,
            "scale_factor": 2,
            "mode": "deconv",
            "conv_blocks": 1,
            "norm_name": "batch",
            "upsample_pre_conv": None,
        },
        [[(1, 64, 4, 4), (1, 16, 8, 8)]],
        deviation="0.1.0 builds it and fails at every forward pass; ours raises at construction",
    ),
    case(
        "UNeXt2Decoder pixelshuffle",
        "components.UNeXt2Decoder",
        {
            "num_channels": [64, 32, 16, 24],
            "norm_name": "instance",
            "mode": "pixelshuffle",
            "conv_blocks": 1,
            "strides": [2, 2, 2],
            "upsample_pre_conv": None,
        },
        [{"list": [(1, 64, 2, 2), (1, 32, 4, 4), (1, 16, 8, 8), (1, 8, 16, 16)]}],
        fixed="missing",
    ),
    case(
        "UNeXt2Decoder deconv strides 2 4",
        "components.UNeXt2Decoder",
        {
            "num_channels": [64, 32, 16],
            "norm_name": "batch",
            "mode": "deconv",
            "conv_blocks": 2,
            "strides": [2, 4],
            "upsample_pre_conv": None,
        },
        [{"list": [(1, 64, 2, 2), (1, 32, 4, 4), (1, 16, 16, 16)]}],
        fixed="missing",
    ),
    case("icnr_init conv2d x2", "components.blocks.icnr_init", {}, [], probe="icnr"),
    case(
        "BaseHead abstract", "components.heads.BaseHead", {"head_name": "a", "batch_key": "b"}, []
    ),
    case(
        "ClassificationHead cosine top3",
        "components.ClassificationHead",
        {"head_name": "ko", "batch_key": "y", "in_dims": 16, "hidden_dims": 32, "num_classes": 10}
        | {"top_k": 3},
        [(6, 16)],
        fixed="missing",
        probe="task_head",
    ),
    case(
        "ClassificationHead linear cosine-schedule",
        "components.ClassificationHead",
        {"head_name": "ko", "batch_key": "y", "in_dims": 16, "hidden_dims": [24, 12]}
        | {"num_classes": 5, "cosine_classifier": False, "top_k": 2, "loss_weight": 2.0}
        | {"weight_schedule": "cosine", "weight_start": 0.5, "weight_warmup_epochs": 4},
        [(6, 16)],
        fixed="missing",
        probe="task_head",
    ),
    case(
        "ClassificationHead top_k > classes",
        "components.ClassificationHead",
        {"head_name": "ko", "batch_key": "y", "in_dims": 16, "hidden_dims": 8, "num_classes": 2},
        [(6, 16)],
        deviation="0.1.0 builds it and fails at the first log_metrics; ours raises at construction",
        probe="task_head",
    ),
    case(
        "CrossModalContrastiveHead defaults",
        "components.heads.CrossModalContrastiveHead",
        {"head_name": "tx", "batch_key": "X", "in_dims": 16, "target_dims": 12},
        [(6, 16)],
        fixed="missing",
        probe="task_head",
    ),
    case(
        "CrossModalContrastiveHead small cosine",
        "components.heads.CrossModalContrastiveHead",
        {"head_name": "tx", "batch_key": "X", "in_dims": 16, "target_dims": 12, "proj_dims": 8}
        | {"image_hidden": [10], "target_hidden": 6, "temperature": 0.5}
        | {"weight_schedule": "cosine", "weight_warmup_epochs": 3, "loss_weight": 0.5},
        [(6, 16)],
        fixed="missing",
        probe="task_head",
    ),
    case(
        "projection_mlp",
        "contrastive.encoder.projection_mlp",
        {"in_dims": 16, "hidden_dims": 32, "out_dims": 8},
        [(4, 16)],
    ),
    case(
        "ConvBlock2D instance cna linear",
        "components.ConvBlock2D",
        {"in_filters": 4, "out_filters": 10, "norm": "instance", "layer_order": "cna"}
        | {"filter_steps": "linear", "num_repeats": 2, "activation": "leakyrelu"},
        [(1, 4, 16, 16)],
    ),
    case(
        "ConvBlock2D narrowing last",
        "components.ConvBlock2D",
        {"in_filters": 8, "out_filters": 4, "filter_steps": "last", "kernel_size": 5},
        [(1, 8, 16, 16)],
    ),
    case(
        "ConvBlock3D no residual padding",
        "components.ConvBlock3D",
        {"in_filters": 2, "out_filters": 4, "residual": False, "kernel_size": (1, 3, 3)}
        | {"padding": (0, 1, 1), "num_repeats": 1},
        [(1, 2, 3, 8, 8)],
        fixed="padding was per (Z, Y, X) in the convolution; 0.1.0 pads X, Y, Z first",
    ),
    case(
        "ConvBlock3D int padding",
        "components.ConvBlock3D",
        {"in_filters": 2, "out_filters": 4, "padding": 2, "num_repeats": 2},
        [(1, 2, 4, 8, 8)],
        fixed="int padding was used (0.1.0: same)",
    ),
    case(
        "ConvBlock3D kernel_size list",
        "components.ConvBlock3D",
        {"in_filters": 2, "out_filters": 4, "kernel_size": [1, 3, 3], "num_repeats": 1},
        [(1, 2, 3, 8, 8)],
        deviation="ours takes a list (as YAML gives it); 0.1.0 raises AttributeError",
    ),
    case(
        "StemDepthtoChannels stride2",
        "components.StemDepthtoChannels",
        {"in_channels": 1, "in_stack_depth": 8, "in_channels_encoder": 64}
        | {"stem_kernel_size": [4, 4, 4], "stem_stride": [2, 4, 4]},
        [(1, 1, 8, 32, 32)],
    ),
    case(
        "UNeXt2Stem 2ch",
        "components.stems.UNeXt2Stem",
        {"in_channels": 2, "out_channels": 40, "kernel_size": [5, 4, 4], "in_stack_depth": 10},
        [(1, 2, 10, 32, 32)],
    ),
    case(
        "UNet3DBase group",
        "unet.unet3d_base.UNet3DBase",
        {"in_channels": 1, "out_channels": 2, "dims": [8, 16], "num_res_block": [1, 1]}
        | {"bottleneck": None},
        [(1, 1, 8, 16, 16)],
    ),
    case(
        "ResnetBlock",
        "unet.blocks.ResnetBlock",
        {"dim": 8, "dim_out": 16},
        [(1, 8, 4, 8, 8)],
    ),
    case(
        "ResnetBlock batch relu",
        "unet.blocks.ResnetBlock",
        {"dim": 8, "dim_out": 8, "norm": "batch", "activation": "relu", "residual": False},
        [(1, 8, 4, 8, 8)],
    ),
    case("Block", "unet.blocks.Block", {"dim": 8, "dim_out": 16, "groups": 4}, [(1, 8, 4, 8, 8)]),
    case("ConvBottleneck3D", "unet.blocks.ConvBottleneck3D", {"channels": 16}, [(1, 16, 2, 4, 4)]),
    case(
        "TimestepEmbedder",
        "unet.blocks.TimestepEmbedder",
        {"hidden_size": 32, "frequency_embedding_size": 64},
        [],
        probe="timesteps",
        fixed="no freqs buffer",
    ),
]


# ---- models built from a weights file: the same deterministic file on both sides; the
# results carry keys and shapes only (a ViT-L state dict is 1.2 GB)
CASES += [
    case(
        "CellDinoModel img32",
        "foundation.cell_dino.CellDinoModel",
        {"img_size": 32},
        [(2, 2, 3, 40, 48), (1, 3, 20, 20)],
        fixed="missing",
    )
    | {"weights": "cell_dino"},
    case(
        "CellDinoModel default",
        "foundation.cell_dino.CellDinoModel",
        {},
        [(1, 1, 1, 64, 64)],
        fixed="missing",
    )
    | {"weights": "cell_dino"},
]


def _cell_dino_state(img_size: int = 224, patch_size: int = 16) -> dict:
    """A ViT-L/16 state dict in the DINOv2 layout (4 chunks of 6 blocks), with values from
    a fixed formula (not a random generator: equal in any torch version)."""
    d, tokens = 1024, (img_size // patch_size) ** 2 + 1
    shapes = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, tokens, d),
        "mask_token": (1, d),
        "patch_embed.proj.weight": (d, 1, patch_size, patch_size),
        "patch_embed.proj.bias": (d,),
    }
    block = {
        "norm1.weight": (d,), "norm1.bias": (d,), "attn.qkv.weight": (3 * d, d),
        "attn.qkv.bias": (3 * d,), "attn.proj.weight": (d, d), "attn.proj.bias": (d,),
        "ls1.gamma": (d,), "norm2.weight": (d,), "norm2.bias": (d,),
        "mlp.fc1.weight": (4 * d, d), "mlp.fc1.bias": (4 * d,), "mlp.fc2.weight": (d, 4 * d),
        "mlp.fc2.bias": (d,), "ls2.gamma": (d,),
    }  # fmt: skip
    for i in range(24):
        for name, shape in block.items():
            shapes[f"blocks.{i // 6}.{i}.{name}"] = shape
    shapes |= {"norm.weight": (d,), "norm.bias": (d,)}
    state = {}
    for j, (name, shape) in enumerate(shapes.items()):
        n = 1
        for s in shape:
            n *= s
        values = torch.sin(torch.arange(n, dtype=torch.float64) * 0.61 + j).float()
        scale = 0.1 if len(shape) == 1 else 0.03
        offset = 1.0 if name.endswith(("norm1.weight", "norm2.weight", "norm.weight")) else 0.0
        state[name] = (values * scale + offset).reshape(shape)
    return state


# DINOv3Model loads a Hugging Face model and its image processor from ``model_name``: a
# local directory here, holding a tiny DINOv3 ViT with values from a fixed formula and a
# processor with non-ImageNet statistics (so that ignoring them shows). Needs transformers
# on both sides (ours: `uv sync --group compat`).
CASES += [
    case(
        "DINOv3Model tiny frozen",
        "foundation.dinov3.DINOv3Model",
        {},
        [(2, 1, 5, 32, 32), (2, 3, 24, 40), (1, 2, 3, 40, 48), (1, 4, 16, 16)],
        fixed="ImageNet min-max preprocessing, 'backbone' attribute",
    )
    | {"weights": "hf_dinov3", "covers": M + "foundation.dinov3.DINOv3Model"},
    case(
        "DINOv3Model tiny unfrozen projection",
        "foundation.dinov3.DINOv3Model",
        {"freeze": False},
        [(2, 1, 5, 32, 32), (1, 2, 48, 40)],
        fixed="ImageNet min-max preprocessing, Identity projection",
    )
    | {"weights": "hf_dinov3", "projection": 4, "covers": M + "foundation.dinov3.DINOv3Model"},
]


# OpenPhenomModel loads with trust_remote_code: a local directory carrying its own tiny
# model code (a patch embedding with ``predict``), config.json with ``auto_map`` and
# formula weights. The probe compares preprocess_2d, forward on raw input (0.1.0 hands it to
# ``predict`` unchanged) and forward on the preprocessed images.
CASES += [
    case(
        "OpenPhenomModel tiny remote code",
        "foundation.openphenom.OpenPhenomModel",
        {},
        [(2, 2, 5, 64, 64), (1, 3, 100, 120), (2, 1, 256, 256)],
        probe="openphenom",
        fixed="forward preprocessed; per-channel 0..255 floats, no resize",
    )
    | {"weights": "hf_openphenom", "covers": M + "foundation.openphenom.OpenPhenomModel"},
    case(
        "OpenPhenomModel tiny unfrozen",
        "foundation.openphenom.OpenPhenomModel",
        {"freeze": False},
        [(1, 2, 64, 64)],
        probe="openphenom",
        fixed="forward preprocessed; 'backbone' attribute",
    )
    | {"weights": "hf_openphenom", "covers": M + "foundation.openphenom.OpenPhenomModel"},
]

_TINY_PHENOM_CONFIG = """from transformers import PretrainedConfig


class TinyPhenomConfig(PretrainedConfig):
    model_type = "tinyphenom"

    def __init__(self, dim=8, patch=32, **kwargs):
        self.dim, self.patch = dim, patch
        super().__init__(**kwargs)
"""

_TINY_PHENOM_MODEL = """import torch
from transformers import PreTrainedModel

from .configuration_tinyphenom import TinyPhenomConfig


class TinyPhenomModel(PreTrainedModel):
    config_class = TinyPhenomConfig

    def __init__(self, config):
        super().__init__(config)
        self.embed = torch.nn.Conv2d(1, config.dim, config.patch, stride=config.patch)
        self.norm = torch.nn.LayerNorm(config.dim)
        self.post_init()

    def forward(self, x):
        b, c = x.shape[:2]
        tokens = self.embed(x.float().reshape(b * c, 1, *x.shape[2:]) / 255.0)
        return self.norm(tokens.flatten(2).mean(-1)).reshape(b, c, -1)

    def predict(self, x):
        return self.forward(x).mean(1)
"""


def _tiny_openphenom_dir(folder: str) -> None:
    import json
    from pathlib import Path

    from safetensors.torch import save_file

    root = Path(folder)
    (root / "configuration_tinyphenom.py").write_text(_TINY_PHENOM_CONFIG)
    (root / "modeling_tinyphenom.py").write_text(_TINY_PHENOM_MODEL)
    config = {
        "model_type": "tinyphenom",
        "dim": 8,
        "patch": 32,
        "auto_map": {
            "AutoConfig": "configuration_tinyphenom.TinyPhenomConfig",
            "AutoModel": "modeling_tinyphenom.TinyPhenomModel",
        },
    }
    (root / "config.json").write_text(json.dumps(config))
    shapes = {
        "embed.weight": (8, 1, 32, 32),
        "embed.bias": (8,),
        "norm.weight": (8,),
        "norm.bias": (8,),
    }
    state = {}
    for j, (name, shape) in enumerate(shapes.items()):
        n = 1
        for size in shape:
            n *= size
        values = torch.sin(torch.arange(n, dtype=torch.float64) * 0.37 + j).float() * 0.1
        state[name] = (values + (1.0 if name == "norm.weight" else 0.0)).reshape(shape)
    save_file(state, str(root / "model.safetensors"), metadata={"format": "pt"})


def _formula_fill(module: torch.nn.Module) -> None:
    """Overwrite every floating parameter and buffer with values from a fixed formula."""
    with torch.no_grad():
        for j, (name, tensor) in enumerate(module.state_dict().items()):
            if not tensor.is_floating_point() or name.endswith("inv_freq"):
                continue
            n = tensor.numel()
            values = torch.sin(torch.arange(n, dtype=torch.float64) * 0.37 + j).float()
            offset = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            tensor.copy_((values * 0.1 + offset).reshape(tensor.shape))


def _tiny_dinov3_dir(folder: str) -> None:
    from transformers import DINOv3ViTConfig, DINOv3ViTImageProcessor, DINOv3ViTModel

    config = DINOv3ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        patch_size=8,
        image_size=32,
        num_register_tokens=2,
    )
    model = DINOv3ViTModel(config)
    _formula_fill(model)
    model.save_pretrained(folder)
    DINOv3ViTImageProcessor(
        image_mean=[0.1, 0.2, 0.3], image_std=[0.5, 0.6, 0.7], size={"height": 32, "width": 32}
    ).save_pretrained(folder)


def _build_from_weights(case_: dict, folder: str):
    kwargs = dict(case_["kwargs"])
    if case_["weights"] == "hf_openphenom":
        _tiny_openphenom_dir(folder)
        return resolve(case_["class"])(folder, **kwargs)
    if case_["weights"] == "hf_dinov3":
        _tiny_dinov3_dir(folder)
        if case_.get("projection"):
            projection = torch.nn.Linear(32, case_["projection"])
            _formula_fill(projection)
            kwargs["projection"] = projection
        return resolve(case_["class"])(folder, **kwargs)
    path = f"{folder}/weights.pth"
    torch.save(_cell_dino_state(kwargs.get("img_size", 224), kwargs.get("patch_size", 16)), path)
    return resolve(case_["class"])(path, **kwargs)


def _train_mode_state(model: torch.nn.Module) -> dict:
    """After ``train()``: how many submodules are in training mode (a frozen backbone stays
    in eval), and which parameters take gradients."""
    model.train()
    state = {
        "training_modules": sum(m.training for m in model.modules()),
        "trainable": sorted(n for n, p in model.named_parameters() if p.requires_grad),
    }
    model.eval()
    return state


def _weights_run(case_: dict) -> dict:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="compat-weights-") as folder:
        torch.manual_seed(0)
        model = _build_from_weights(case_, folder).eval()
    inputs = _inputs(case_)
    outputs = []
    for x in inputs:
        try:
            outputs.append(_forward(model, x, case_))
        except Exception as exc:
            outputs.append({"error": error_name(exc)})
    return {
        "shapes": {k: list(v.shape) for k, v in model.state_dict().items()},
        "n_params": sum(p.numel() for p in model.parameters()),
        "frozen": not any(p.requires_grad for p in model.parameters()),
        "train_mode": _train_mode_state(model),
        "inputs": inputs,
        "outputs": outputs,
    }


def _ours_weights_case(case_: dict, ref: dict, row: dict) -> dict:
    try:
        mine = _weights_run(case_)
    except Exception as exc:
        row.update(status="DIFF", note=f"ours fails: {error_name(exc)[:200]}")
        return row
    same_keys = mine["shapes"] == ref["shapes"]
    row.update(keys_equal=set(mine["shapes"]) == set(ref["shapes"]), shapes_equal=same_keys)
    row["n_params"] = (mine["n_params"], ref["n_params"])
    d = max_abs_diff(ref["outputs"], mine["outputs"])
    row["max_abs_diff"] = d
    scale = max((float(t.abs().max()) for t in _tensors(ref["outputs"])), default=1.0)
    same_train = mine["train_mode"] == ref.get("train_mode", mine["train_mode"])
    ok = same_keys and mine["frozen"] == ref["frozen"] and same_train and d is not None
    ok = ok and d <= ATOL + RTOL * scale
    if ok:
        note = f"was: {case_['fixed']}" if case_["fixed"] else ""
        row.update(status="fixed" if case_["fixed"] else "ok", note=note)
    else:
        row.update(
            status="DIFF",
            note=f"keys/shapes equal {same_keys}, train()/requires_grad equal {same_train}, "
            f"max|diff| {d}",
        )
    return row


# ---- probes: (model, inputs) -> outputs, for what a plain forward pass does not show


def _probe_mlp_encode(model, inputs):
    return {"forward": model(inputs[0]), "encode": model.encode(inputs[0])}


def _probe_icnr(_model, _inputs):
    from _common import resolve

    icnr = resolve(M + "components.blocks.icnr_init")
    out = {}
    for name, conv, factor, dims in [
        ("2d", torch.nn.Conv2d(8, 16, 3), 2, 2),
        ("3d", torch.nn.Conv3d(4, 16, 3), 2, 3),
    ]:
        torch.nn.init.constant_(conv.bias, 0.5)
        torch.manual_seed(3)
        icnr(conv, factor, upsample_dims=dims)
        out[name] = {"weight": conv.weight.detach().clone(), "bias": conv.bias.detach().clone()}
    return out


def _probe_task_head(model, inputs):
    x = inputs[0]
    gen = torch.Generator().manual_seed(11)
    out = model(x)
    result = {"forward": out}
    if hasattr(model, "project_target"):
        target = torch.randn(x.shape[0], model.target_proj.backbone[0].in_features, generator=gen)
        target[1, 2] = float("nan")
        target[4] = float("nan")
        result["project_target"] = model.project_target(torch.nan_to_num(target))
        variants = {"some_unpaired": target, "one_paired": torch.full_like(target, float("nan"))}
        variants["one_paired"][0] = torch.nan_to_num(target[0])
    else:
        n_classes = out.shape[1]
        variants = {"labels": torch.randint(0, n_classes, (x.shape[0],), generator=gen)}
    for key, y in variants.items():
        loss = model.compute_loss(out, y)
        logged = []

        def log_fn(name, value, _sink=logged, **_kwargs):
            _sink.append([name, float(value)])

        # an error here (0.1.0: top_k > num_classes) is the call's recorded outcome
        model.log_metrics({"loss": loss, "logits": out, "y": y}, log_fn, "train")
        result[key] = {"loss": loss, "logged": logged}
    weights = [model.get_weight()]
    for epoch in range(6):
        model.step(epoch)
        weights.append(model.get_weight())
    result["weights"] = torch.tensor(weights, dtype=torch.float64)
    result["attributes"] = [model.head_name, model.batch_key]
    return result


def _probe_openphenom(model, inputs):
    pre = model.preprocess_2d(inputs[0])
    out = {"preprocess": pre.float(), "preprocessed": model(pre)}
    if inputs[0].ndim == 4:  # the tiny model takes (B, C, Y, X) only
        out["raw"] = model(inputs[0])
    return out


def _probe_timesteps(model, _inputs):
    return {"embedding": model(torch.tensor([0.0, 1.0, 10.0, 999.0]))}


PROBES = {
    "mlp_encode": _probe_mlp_encode,
    "icnr": _probe_icnr,
    "task_head": _probe_task_head,
    "timesteps": _probe_timesteps,
    "openphenom": _probe_openphenom,
}


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


def _inputs(case_: dict) -> list:
    gen = torch.Generator().manual_seed(7)

    def make(entry):
        if isinstance(entry, dict):
            return {"list": [make(e) for e in entry["list"]]}
        if entry and isinstance(entry[0], (list, tuple)):
            return [make(e) for e in entry]
        return torch.randn(tuple(entry), generator=gen)

    return [make(entry) for entry in case_["inputs"]]


def _forward(model, x, case_):
    torch.manual_seed(1)
    with torch.no_grad():
        if case_.get("probe"):
            return to_plain(PROBES[case_["probe"]](model, [x] if x is not None else []))
        if isinstance(x, dict):
            return to_plain(model(x["list"], **case_["forward_kwargs"]))
        if isinstance(x, list):
            return to_plain(model(*x, **case_["forward_kwargs"]))
        return to_plain(model(x, **case_["forward_kwargs"]))


def _build(case_: dict):
    obj = resolve(case_["class"])
    if case_.get("probe") == "icnr":
        return obj  # a function, exercised by its probe
    return obj(**case_["kwargs"])


def oracle(case_: dict) -> dict:
    if case_.get("weights"):
        return _weights_run(case_)
    torch.manual_seed(0)
    model = _build(case_)
    is_module = isinstance(model, torch.nn.Module)
    if is_module:
        _perturb(model)
        model.eval()
    result = {
        "state_dict": {k: v.clone() for k, v in model.state_dict().items()} if is_module else {},
        "n_params": sum(p.numel() for p in model.parameters()) if is_module else 0,
        "inputs": _inputs(case_),
        "outputs": [],
    }
    calls = result["inputs"] or ([None] if case_.get("probe") else [])
    for x in calls:
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
    if case_.get("weights"):
        return _ours_weights_case(case_, ref, row)
    if "error" in ref:
        row.update(status="skip", note=f"oracle rejects: {ref['error'][:120]}")
        try:
            _build(case_)
            status = "deviation" if case_["deviation"] else "DIFF"
            row.update(status=status, note=row["note"] + f"; ours builds it: {case_['deviation']}")
        except Exception as exc:
            row.update(status="ok", note=f"both reject ({type(exc).__name__})")
        return row
    try:
        torch.manual_seed(0)
        model = _build(case_)
    except Exception as exc:
        # ours rejects at construction: the same outcome only if every 0.1.0 call fails
        every_call_fails = ref["outputs"] and all(
            isinstance(o, dict) and "error" in o for o in ref["outputs"]
        )
        status = "deviation" if every_call_fails and case_["deviation"] else "DIFF"
        row.update(
            status=status,
            note=f"ours raises at construction ({error_name(exc)[:100]}); 0.1.0 builds it"
            + (", every forward raises" if every_call_fails else " and runs"),
        )
        return row
    if not isinstance(model, torch.nn.Module):  # a function, compared through its probe
        model_outputs = [_forward(model, None, case_)]
        d = max_abs_diff(ref["outputs"][0], model_outputs[0])
        ok = d is not None and d <= ATOL
        row.update(max_abs_diff=d, status=("fixed" if case_["fixed"] else "ok") if ok else "DIFF")
        return row
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
    calls = ref["inputs"] or ([None] if case_.get("probe") else [])
    for x, ref_out in zip(calls, ref["outputs"], strict=True):
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
