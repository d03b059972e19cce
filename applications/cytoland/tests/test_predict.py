"""Sliding-window blending and test-time augmentation (cytoland.predict)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cytoland.predict import TTA_TRANSFORMS, predict_sliding_window, tile_starts, tile_weights


def _local_net(out_channels: int = 2) -> nn.Module:
    """Two 3 x 3 convolutions: a receptive field of 5 x 5 (2 pixels each side)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv3d(1, 4, (1, 3, 3), padding=(0, 1, 1)),
        nn.Tanh(),
        nn.Conv3d(4, out_channels, (1, 3, 3), padding=(0, 1, 1)),
    ).eval()


def test_tile_starts_cover_the_axis():
    assert tile_starts(64, 64, 16) == [0]
    assert tile_starts(40, 64, 16) == [0]
    starts = tile_starts(150, 64, 16)
    assert starts[0] == 0 and starts[-1] == 150 - 64
    assert all(b - a <= 64 - 16 for a, b in zip(starts, starts[1:], strict=False))
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(150, 64, 64)


def test_tile_weights_vanish_at_shared_edges_only():
    w = tile_weights(64, 16, first=False, last=False)
    assert torch.all(w[:4] == 0) and torch.all(w[-4:] == 0) and torch.all(w[16:48] == 1)
    edge = tile_weights(64, 16, first=True, last=False)
    assert torch.all(edge[:48] == 1) and torch.all(edge[-4:] == 0)


@pytest.mark.parametrize("shape", [(100, 90), (64, 200), (40, 50)])
def test_blended_tiles_equal_one_shot_prediction(shape):
    net = _local_net()
    x = torch.randn(2, 1, 1, *shape)
    with torch.no_grad():
        one_shot = net(x)
    tiled = predict_sliding_window(net, x, (32, 32), 16)
    assert tiled.shape == one_shot.shape
    if min(shape) >= 32:
        assert (tiled - one_shot).abs().max() < 1e-5
    else:  # smaller than a tile: padded, predicted once, cropped (equal away from the pad)
        assert (tiled - one_shot)[..., :-3, :-3].abs().max() < 1e-5


def test_tiles_without_blending_would_show():
    # the same net with a receptive field wider than a quarter of the overlap differs:
    # the exactness above is a property of the weights, not of an accidental one-shot path
    torch.manual_seed(0)
    wide = nn.Sequential(nn.Conv3d(1, 1, (1, 15, 15), padding=(0, 7, 7))).eval()
    x = torch.randn(1, 1, 1, 100, 100)
    with torch.no_grad():
        one_shot = wide(x)
    assert (predict_sliding_window(wide, x, (32, 32), 16) - one_shot).abs().max() > 1e-3


def test_identity_tta_equals_plain_prediction():
    net = _local_net()
    x = torch.randn(1, 1, 1, 96, 80)
    plain = predict_sliding_window(net, x, (32, 32), 16)
    for tta in (["identity"], ["identity", "identity"]):
        for reduction in ("mean", "median"):
            out = predict_sliding_window(net, x, (32, 32), 16, tta=tta, tta_reduction=reduction)
            assert torch.allclose(out, plain, atol=1e-6)


def test_tta_inverts_each_transform():
    x = torch.randn(1, 1, 1, 32, 32)
    for name, (forward, inverse) in TTA_TRANSFORMS.items():
        assert torch.equal(inverse(forward(x)), x), name
    # a net that only flips its input is undone exactly by every augmentation
    flip_net = lambda t: torch.flip(t, (-1,))  # noqa: E731
    expected = torch.flip(x, (-1,))
    out = predict_sliding_window(flip_net, x, (32, 32), 0, tta=["identity", "flip_x"])
    assert torch.allclose(out, expected)
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        predict_sliding_window(flip_net, x, (32, 32), 0, tta=["rot45"])


def test_z_windows_of_a_25d_network():
    # a "2.5D" network: 3 slices in, the mean of them (1 slice) out
    def net(t):
        return t.mean(2, keepdim=True)

    x = torch.randn(1, 1, 7, 32, 32)
    out = predict_sliding_window(net, x, (32, 32), 0, z_window=3)
    assert out.shape == (1, 1, 5, 32, 32)  # centred on slices 1..5
    assert torch.allclose(out[:, :, 1], x[:, :, 1:4].mean(2), atol=1e-6)  # centred on 2


def test_z_windows_of_a_3d_network_are_averaged():
    def net(t):
        return 2 * t

    x = torch.randn(1, 1, 8, 32, 32)
    out = predict_sliding_window(net, x, (32, 32), 0, z_window=4, z_overlap=2)
    assert out.shape == x.shape
    assert torch.allclose(out, 2 * x, atol=1e-6)


def test_blended_tiles_leave_no_seams():
    """Per-tile normalization (what instance-normalized UNeXt2 does) leaves no seams once blended.

    Each tile is z-scored on its own, so tiles disagree by an offset and a scale; stitched
    without overlap that shows as a jump at the tile border, which is the control here.
    """

    def instance_normed(tile: torch.Tensor) -> torch.Tensor:
        mean = tile.mean(dim=(-2, -1), keepdim=True)
        return (tile - mean) / tile.std(dim=(-2, -1), keepdim=True)

    yy, xx = torch.meshgrid(torch.linspace(0, 5, 128), torch.linspace(0, 5, 128), indexing="ij")
    image = (torch.sin(yy) * torch.cos(xx) + 0.1 * yy)[None, None, None]

    def worst_step_over_median(out: torch.Tensor) -> float:
        steps = torch.cat(
            [(out[1:] - out[:-1]).abs().mean(1), (out[:, 1:] - out[:, :-1]).abs().mean(0)]
        )
        return (steps.max() / steps.median()).item()

    blended = predict_sliding_window(instance_normed, image, (64, 64), 32)[0, 0, 0]
    stitched = predict_sliding_window(instance_normed, image, (64, 64), 0)[0, 0, 0]
    assert worst_step_over_median(stitched) > 10  # the measure sees a seam
    assert worst_step_over_median(blended) < 3
