"""VSUNet and FcmaeUNet: training step, schedule, checkpoints, frozen encoders."""

from __future__ import annotations

import math

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader

from cytoland import FcmaeUNet, VSUNet

_UNET = {"in_channels": 1, "out_channels": 2, "num_blocks": 2, "num_filters": [4, 8, 16]}
_FCMAE = {
    "in_channels": 1,
    "out_channels": 1,
    "in_stack_depth": 1,
    "stem_kernel_size": [1, 4, 4],
    "dims": [8, 16, 32, 64],
    "encoder_blocks": [1, 1, 1, 1],
    "decoder_conv_blocks": 1,
}


def _batches(n: int, out_channels: int = 2, size: int = 32) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        source = torch.randn(4, 1, 1, size, size, generator=g)
        target = torch.cat([source.abs(), -source][:out_channels], dim=1)
        out.append({"source": source, "target": target})
    return out


def _loader(batches):
    return DataLoader(batches, batch_size=None)


def _trainer(tmp_path, **kwargs) -> Trainer:
    kwargs.setdefault("max_epochs", 1)
    return Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **kwargs,
    )


class _RecordLR(Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_training_lowers_the_loss_and_logs_metrics_per_target(tmp_path):
    torch.manual_seed(0)
    model = VSUNet("Unet2d", _UNET, lr=1e-2, example_input_yx_shape=(32, 32))
    batches = _batches(8)
    trainer = _trainer(tmp_path, max_epochs=4)
    before = trainer.validate(model, _loader(batches[:2]), verbose=False)[0]["loss/validate"]
    trainer.fit(model, _loader(batches), _loader(batches[:2]))
    metrics = trainer.callback_metrics
    assert float(metrics["loss/validate"]) < before
    for name in ("pearson", "ssim", "psnr", "mae"):
        for channel in ("channel_0", "channel_1"):
            assert f"val/{name}/{channel}" in metrics


def test_warmup_cosine_is_stepped_every_optimizer_step(tmp_path):
    model = VSUNet("Unet2d", _UNET, lr=1e-2, schedule="WarmupCosine", warmup_steps=2)
    record = _RecordLR()
    _trainer(tmp_path, max_epochs=1, callbacks=[record]).fit(model, _loader(_batches(6)))
    lrs = record.lrs
    assert len(lrs) == 6
    assert lrs[0] < lrs[1] < lrs[2]  # warmup, one step at a time
    assert lrs[2] == pytest.approx(1e-2)
    assert all(a > b for a, b in zip(lrs[2:], lrs[3:], strict=False))  # cosine decay
    assert lrs[-1] == pytest.approx(1e-2 * 0.5 * (1 + math.cos(math.pi * 3 / 4)))


def test_shape_mismatch_names_the_config():
    model = VSUNet("Unet2d", {**_UNET, "out_channels": 1})
    with pytest.raises(ValueError, match="out_channels"):
        model.training_step(_batches(1)[0], 0)


def test_unknown_architecture():
    with pytest.raises(ValueError, match="Unknown architecture"):
        VSUNet("Unet4d")


def test_freeze_encoder_trains_only_the_decoder():
    model = VSUNet("Unet2d", _UNET, freeze_encoder=True)
    frozen = {n for n, p in model.model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("down_conv_block_", "bottom_transition")) for n in frozen)
    assert any(p.requires_grad for p in model.parameters())
    optimizer = model.configure_optimizers()
    trainable = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    assert trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_ckpt_path_loads_matching_tensors_and_reports_the_rest(tmp_path):
    torch.manual_seed(1)
    source = VSUNet("Unet2d", _UNET)
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": source.state_dict()}, path)
    same = VSUNet("Unet2d", _UNET, ckpt_path=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(same.state_dict()[key], value)
    assert not same.weights_report["missing"] and not same.weights_report["mismatched"]
    # other output channels: the terminal block does not fit, the rest loads
    other = VSUNet("Unet2d", {**_UNET, "out_channels": 3}, ckpt_path=str(path))
    report = other.weights_report
    assert report["mismatched"] and all("terminal_block" in k for k in report["mismatched"])
    assert set(report["mismatched"]) <= set(report["missing"])
    key = "model.down_conv_block_0.conv_0.weight"
    if key in source.state_dict():
        assert torch.equal(other.state_dict()[key], source.state_dict()[key])
    with pytest.raises(FileNotFoundError):
        VSUNet("Unet2d", _UNET, ckpt_path=str(tmp_path / "missing.ckpt"))


def test_fcmae_pretrain_then_finetune_from_the_encoder(tmp_path):
    torch.manual_seed(0)
    pretrain = FcmaeUNet(fit_mask_ratio=0.5, model_config=_FCMAE, lr=1e-2)
    batches = _batches(4, out_channels=1, size=64)  # a 2 x 2 grid of 32-pixel mask patches
    _trainer(tmp_path).fit(pretrain, _loader(batches))
    pred, target = pretrain._masked(batches[0]["source"])
    masked = (target == 0).float().mean()  # the loss sees only the masked half
    assert 0.3 < masked < 0.7
    loss = pretrain.loss_function(pred, target)
    assert torch.isfinite(loss) and loss > 0
    path = tmp_path / "pretrain.ckpt"
    torch.save({"state_dict": pretrain.state_dict()}, path)

    finetune = FcmaeUNet(
        model_config={**_FCMAE, "out_channels": 2},
        ckpt_path=str(path),
        encoder_only=True,
        freeze_encoder=True,
    )
    report = finetune.weights_report
    assert report["loaded"] and all(k.startswith("model.encoder.") for k in report["loaded"])
    for key in report["loaded"]:
        assert torch.equal(finetune.state_dict()[key], pretrain.state_dict()[key])
    encoder = [p for n, p in finetune.model.named_parameters() if n.startswith("encoder.")]
    assert encoder and not any(p.requires_grad for p in encoder)
    out = finetune(batches[0]["source"])
    assert out.shape == (4, 2, 1, 64, 64)
    with pytest.raises(ValueError, match="must equal in_channels"):
        FcmaeUNet(fit_mask_ratio=0.5, model_config={**_FCMAE, "out_channels": 2})


def test_predict_step_tiles_whole_fovs():
    torch.manual_seed(0)
    model = VSUNet("Unet2d", _UNET, predict_tile_yx=(32, 32)).eval()
    source = torch.randn(1, 1, 1, 80, 72)
    out = model.predict_step({"source": source}, 0)
    assert out.shape == (1, 2, 1, 80, 72)
    tta = VSUNet("Unet2d", _UNET, predict_tile_yx=(32, 32), test_time_augmentations=["identity"])
    tta.load_state_dict(model.state_dict())
    assert torch.allclose(tta.eval().predict_step({"source": source}, 0), out, atol=1e-6)


@pytest.mark.parametrize(
    ("architecture", "config"),
    [
        ("Unet3d", {"depth": 2, "mult_chan": 4, "in_stack_depth": 4}),
        ("Unet25d", {"num_blocks": 2, "in_stack_depth": 5}),
        ("UNeXt2", {"backbone": "convnextv2_atto", "in_stack_depth": 5}),
        ("fcmae", {**_FCMAE, "in_stack_depth": 5, "stem_kernel_size": [5, 4, 4]}),
    ],
)
def test_every_architecture_has_a_freezable_encoder(architecture, config):
    model = VSUNet(architecture, config, freeze_encoder=True)
    frozen = [n for n, p in model.model.named_parameters() if not p.requires_grad]
    trainable = [n for n, p in model.model.named_parameters() if p.requires_grad]
    assert frozen and trainable, architecture
