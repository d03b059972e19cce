"""Measured properties of FlexibleBatchSampler on a synthetic anchors table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from viscy_data.sampler import FlexibleBatchSampler


@pytest.fixture(scope="module")
def anchors() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 20_000
    exp = rng.choice(["exp_a", "exp_b", "exp_c"], size=n, p=[0.5, 0.3, 0.2])
    # conditions deliberately unbalanced: 80% uninfected
    cond = np.where(rng.random(n) < 0.8, "uninfected", "infected")
    hpi = rng.uniform(0, 48, size=n)
    return pd.DataFrame({"experiment": exp, "condition": cond, "hours_post_infection": hpi})


def _epoch(sampler: FlexibleBatchSampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_len_matches_iter(anchors):
    for drop_last in (True, False):
        s = FlexibleBatchSampler(anchors, batch_size=300, drop_last=drop_last, stratify_by=None)
        batches = _epoch(s)
        assert len(batches) == len(s)
        assert sum(len(b) for b in batches) == (len(anchors) if not drop_last else 300 * len(s))
    assert len(FlexibleBatchSampler(anchors, batch_size=300, stratify_by=None)) == 66


def test_no_axes_is_a_shuffle_pass(anchors):
    s = FlexibleBatchSampler(anchors, batch_size=100, stratify_by=None)
    flat = np.concatenate(_epoch(s))
    assert len(np.unique(flat)) == len(flat) == len(anchors)
    assert not np.array_equal(flat, np.sort(flat))


def test_experiment_pure_batches(anchors):
    s = FlexibleBatchSampler(anchors, batch_size=64, experiment_aware=True)
    exp = anchors["experiment"].to_numpy()
    batches = _epoch(s)
    assert all(len(set(exp[b])) == 1 for b in batches)
    # all experiments are visited, roughly in proportion to their size
    counts = pd.Series([exp[b[0]] for b in batches]).value_counts(normalize=True)
    assert set(counts.index) == {"exp_a", "exp_b", "exp_c"}
    assert abs(counts["exp_a"] - 0.5) < 0.1


def test_batches_have_distinct_anchors(anchors):
    s = FlexibleBatchSampler(
        anchors,
        batch_size=128,
        experiment_aware=True,
        condition_balanced=True,
        temporal_enrichment=True,
        leaky=0.2,
    )
    assert all(len(set(b)) == len(b) for b in _epoch(s))


def test_group_weights_choose_groups(anchors):
    s = FlexibleBatchSampler(
        anchors,
        batch_size=32,
        experiment_aware=True,
        experiment_weights={"exp_c": 3.0, "exp_a": 1.0},
    )
    exp = anchors["experiment"].to_numpy()
    firsts = pd.Series([exp[b[0]] for b in _epoch(s)]).value_counts(normalize=True)
    assert "exp_b" not in firsts.index
    assert abs(firsts["exp_c"] - 0.75) < 0.1
    with pytest.raises(ValueError, match="exp_z"):
        FlexibleBatchSampler(anchors, experiment_aware=True, group_weights={"exp_z": 1.0})


@pytest.mark.parametrize("ratio", [None, {"infected": 0.3, "uninfected": 0.7}])
def test_condition_share_within_10_points(anchors, ratio):
    s = FlexibleBatchSampler(
        anchors,
        batch_size=64,
        experiment_aware=True,
        condition_balanced=True,
        condition_ratio=ratio,
    )
    target = 0.5 if ratio is None else ratio["infected"]
    cond = anchors["condition"].to_numpy()
    batches = _epoch(s)[:200]
    assert len(batches) == 200
    share = np.mean([np.mean(cond[b] == "infected") for b in batches])
    assert abs(share - target) <= 0.10
    # per batch too, not only on average
    per_batch = np.array([np.mean(cond[b] == "infected") for b in batches])
    assert np.all(np.abs(per_batch - target) <= 0.10)


def test_unbalanced_without_condition_balance(anchors):
    s = FlexibleBatchSampler(anchors, batch_size=64, stratify_by=None)
    cond = anchors["condition"].to_numpy()
    share = np.mean([np.mean(cond[b] == "infected") for b in _epoch(s)[:200]])
    assert abs(share - 0.2) < 0.05  # the data's own share, far from 0.5


def test_default_stratify_falls_back_to_condition(anchors):
    s = FlexibleBatchSampler(anchors, batch_size=64)
    assert s.stratify_by == ["condition"]
    with pytest.raises(ValueError, match="perturbation"):
        FlexibleBatchSampler(anchors, stratify_by=["perturbation"])


def test_temporal_enrichment_share_in_window(anchors):
    window, global_fraction = 2.0, 0.3
    s = FlexibleBatchSampler(
        anchors,
        batch_size=100,
        experiment_aware=True,
        condition_balanced=True,
        temporal_enrichment=True,
        temporal_window_hours=window,
        temporal_global_fraction=global_fraction,
    )
    hpi = anchors["hours_post_infection"].to_numpy()
    shares = []
    for b in _epoch(s)[:100]:
        t = np.sort(hpi[b])
        # best window of width 2 * window (the sampler's focal window is one such window)
        counts = np.searchsorted(t, t + 2 * window, side="right") - np.arange(len(t))
        shares.append(counts.max() / len(t))
    assert min(shares) >= 1.0 - global_fraction
    # uniform times over 48 h put only ~10% in a 4 h window without enrichment
    plain = FlexibleBatchSampler(anchors, batch_size=100, stratify_by=None)
    t = np.sort(hpi[_epoch(plain)[0]])
    counts = np.searchsorted(t, t + 2 * window, side="right") - np.arange(len(t))
    assert counts.max() / len(t) < 0.5


def test_leaky_fraction(anchors):
    s = FlexibleBatchSampler(anchors, batch_size=100, experiment_aware=True, leaky=0.2)
    exp = anchors["experiment"].to_numpy()
    fractions = []
    for b in _epoch(s)[:100]:
        values, counts = np.unique(exp[b], return_counts=True)
        fractions.append(1.0 - counts.max() / len(b))
    assert abs(np.mean(fractions) - 0.2) <= 0.02
    # leaky is ignored without grouping (nothing to leak from)
    assert FlexibleBatchSampler(anchors, leaky=0.2, stratify_by=None).leaky == 0.0


def test_two_ranks_equal_and_reshuffled(anchors):
    kw = dict(
        batch_size=64,
        experiment_aware=True,
        condition_balanced=True,
        temporal_enrichment=True,
        leaky=0.1,
        num_replicas=2,
        seed=7,
    )
    r0 = FlexibleBatchSampler(anchors, rank=0, **kw)
    r1 = FlexibleBatchSampler(anchors, rank=1, **kw)
    e0r0, e0r1 = _epoch(r0, 0), _epoch(r1, 0)
    assert len(e0r0) == len(e0r1) == len(r0) == len(r1) > 0
    assert e0r0 != e0r1  # ranks take turns at one global sequence (see the test below)
    # new epoch: different order; same seed and epoch: same order
    e1r0 = _epoch(r0, 1)
    assert e1r0 != e0r0
    again = FlexibleBatchSampler(anchors, rank=0, **kw)
    assert _epoch(again, 0) == e0r0
    assert _epoch(again, 1) == e1r0
    # different seed: different order
    other = FlexibleBatchSampler(anchors, rank=0, **{**kw, "seed": 8})
    assert _epoch(other, 0) != e0r0


def test_uneven_ranks_same_length(anchors):
    small = anchors.iloc[:1001]
    kw = dict(batch_size=50, num_replicas=3, drop_last=False)
    lens = [len(list(FlexibleBatchSampler(small, rank=r, **kw))) for r in range(3)]
    assert lens[0] == lens[1] == lens[2] == 7


def test_bad_arguments(anchors):
    with pytest.raises(ValueError, match="batch_group_by"):
        FlexibleBatchSampler(anchors, batch_group_by="microscope")
    with pytest.raises(ValueError, match="leaky"):
        FlexibleBatchSampler(anchors, leaky=1.5)
    with pytest.raises(ValueError, match="time column"):
        FlexibleBatchSampler(anchors[["experiment"]], temporal_enrichment=True, stratify_by=None)
    with pytest.raises(ValueError, match="rank"):
        FlexibleBatchSampler(anchors, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="empty"):
        FlexibleBatchSampler(anchors.iloc[:0])


def test_multi_column_grouping(anchors):
    s = FlexibleBatchSampler(
        anchors, batch_size=32, batch_group_by=["experiment", "condition"], stratify_by=None
    )
    keys = anchors["experiment"] + "|" + anchors["condition"]
    assert all(keys.iloc[b].nunique() == 1 for b in _epoch(s))


def test_epoch_reachable_through_batch_sampler_sampler(anchors):
    # Lightning calls set_epoch on loader.batch_sampler.sampler (checked end to end with a
    # Trainer in the dynaclr datamodule tests)
    s = FlexibleBatchSampler(anchors, batch_size=64, stratify_by=None)
    s.sampler.set_epoch(3)
    assert s.epoch == 3


def test_epoch_advances_on_iter_and_ranks_are_dealt_one_sequence(anchors):
    """0.1.0: each ``__iter__`` advances the epoch; DDP ranks take turns at one global batch
    sequence (rank r gets batches r, r + R, ...)."""
    kw = dict(batch_size=64, seed=3)
    s = FlexibleBatchSampler(anchors, **kw)
    first = [list(b) for b in s]
    assert s.epoch == 1
    second = [list(b) for b in s]
    assert s.epoch == 2 and second != first
    s.set_epoch(0)
    assert [list(b) for b in s] == first
    ranks = [FlexibleBatchSampler(anchors, num_replicas=3, rank=r, **kw) for r in range(3)]
    per_rank = len(first) // 3
    for r, sampler in enumerate(ranks):
        assert len(sampler) == per_rank
        assert [list(b) for b in sampler] == first[r::3][:per_rank]
