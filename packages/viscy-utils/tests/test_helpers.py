from types import SimpleNamespace

import numpy as np
import pytest
import torch

from viscy_utils.log_images import detach_sample, detach_stacks, render_images, render_stack_grid
from viscy_utils.mp_utils import get_val_stats, mp_wrapper
from viscy_utils.normalize import hist_clipping, unzscore, zscore
from viscy_utils.optimizers import configure_adamw_scheduler
from viscy_utils.tensor_utils import to_numpy


def test_warmup_cosine_schedule():
    model = torch.nn.Linear(2, 2)
    module = SimpleNamespace(_trainer=SimpleNamespace(max_epochs=10))
    (opt,), (sched,) = configure_adamw_scheduler(module, model, lr=1.0, schedule="WarmupCosine")
    assert isinstance(opt, torch.optim.AdamW)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3)
    assert lrs[3] == pytest.approx(1.0)  # warmup done after 3 epochs
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:], strict=False))  # then decays
    assert lrs[-1] < 0.1
    (opt,), (sched,) = configure_adamw_scheduler(module, model, lr=0.5, schedule="Constant")
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="Unknown schedule"):
        configure_adamw_scheduler(module, model, lr=0.5, schedule="Linear")


def test_detach_stacks_and_render_stack_grid():
    source = torch.rand(3, 2, 5, 8, 8)  # B, C, Z, Y, X
    pred = torch.rand(3, 1, 8, 8)  # B, C, Y, X
    rows = detach_stacks([source, pred], log_samples_per_batch=2)
    assert len(rows) == 2
    assert rows[0][0].shape == (2, 8, 8)
    np.testing.assert_array_equal(rows[1][0], source[1, :, 2].numpy())  # middle Z slice
    grid = render_stack_grid(rows, cmaps=["gray", "viridis"])
    assert grid.shape == (2 * 8, 3 * 8, 3)
    assert grid.dtype == np.uint8
    assert grid.max() == 255


def test_detach_sample_one_2d_array_per_channel():
    source = torch.rand(3, 2, 5, 4, 6)
    pred = torch.rand(3, 1, 5, 4, 6)
    rows = detach_sample([source, pred], log_samples_per_batch=2)
    assert [len(r) for r in rows] == [3, 3]
    assert all(a.shape == (4, 6) for r in rows for a in r)
    np.testing.assert_array_equal(rows[1][1], source[1, 1, 2].numpy())
    np.testing.assert_array_equal(rows[1][2], pred[1, 0, 2].numpy())


def test_render_images_min_max_and_column_colormaps():
    from matplotlib import colormaps

    x = np.linspace(0, 1, 12).reshape(3, 4) * 7 + 2  # min 2, max 9
    unit = (x - 2) / 7
    grid = render_images([[x, x, x], [x, x, x]])
    assert grid.shape == (6, 12, 3) and grid.dtype == np.uint8
    gray = (colormaps["gray"](unit)[..., :3] * 255).astype(np.uint8)
    inferno = (colormaps["inferno"](unit)[..., :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(grid[:3, :4], gray)  # first column gray
    np.testing.assert_array_equal(grid[3:, 8:], inferno)  # the others inferno
    assert grid[0, 0].tolist() == [0, 0, 0] and grid[2, 3].tolist() == [255, 255, 255]
    # given colormaps cycle over the columns
    grid = render_images([[x, x, x]], cmaps=["viridis", "gray"])
    viridis = (colormaps["viridis"](unit)[..., :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(grid[:, :4], viridis)
    np.testing.assert_array_equal(grid[:, 4:8], gray)
    np.testing.assert_array_equal(grid[:, 8:], viridis)
    # a constant tile renders at the top of its colormap
    const = render_images([[np.full((2, 2), 3.0), np.full((2, 2), 3.0)]])
    assert const[0, 0].tolist() == [255, 255, 255]
    assert (
        const[0, 2].tolist()
        == (np.array(colormaps["inferno"](1.0)[:3]) * 255).astype(np.uint8).tolist()
    )
    with pytest.raises(ValueError, match="2-D"):
        render_images([[np.zeros((2, 3, 3))]])
    with pytest.raises(ValueError, match="no images"):
        render_images([])


def test_stats_and_normalize():
    values = np.arange(101, dtype=np.float32)
    stats = get_val_stats(values)
    assert stats["median"] == 50
    assert stats["iqr"] == 50
    assert stats["p1"] == pytest.approx(1)
    assert (stats["min"], stats["max"]) == (0, 100)
    assert mp_wrapper(pow, [(2, 3), (3, 2)], workers=1) == [8, 9]
    img = np.random.default_rng(0).normal(5, 2, size=(32, 32))
    z = zscore(img)
    assert abs(z.mean()) < 1e-6
    assert z.std() == pytest.approx(1, rel=1e-4)
    np.testing.assert_allclose(unzscore((img - 5) / 2, 5, 2), img, rtol=1e-5)
    clipped = hist_clipping(img, 2, 98)
    assert clipped.max() <= np.percentile(img, 98) + 1e-9
    assert to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32
