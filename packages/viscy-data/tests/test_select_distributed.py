"""SelectWell and ShardedDistributedSampler."""

from __future__ import annotations

import pytest
from iohub.ngff import open_ome_zarr

from viscy_data import SelectWell, ShardedDistributedSampler
from viscy_data.select import filter_fov_names


class _Selector(SelectWell):
    def __init__(self, include_wells=None, exclude_fovs=None):
        self._include_wells = include_wells
        self._exclude_fovs = exclude_fovs


def test_filter_fov_names():
    names = ["A/1/0", "A/1/1", "B/1/0", "B/2/0"]
    assert filter_fov_names(names, include_wells=["B/1", "B/2"]) == ["B/1/0", "B/2/0"]
    assert filter_fov_names(names, exclude_fovs=["A/1/1"]) == ["A/1/0", "B/1/0", "B/2/0"]
    assert filter_fov_names(names, include_fovs=["/B/2/0", "A/1/0"]) == ["A/1/0", "B/2/0"]
    assert filter_fov_names(names, include_wells=["C/3"]) == []


def test_select_well_on_plate(hcs_plate_v5):
    with open_ome_zarr(hcs_plate_v5.path, mode="r") as plate:
        kept = _Selector(include_wells=["A/1"])._filter_fit_fovs(plate)
        assert [p.zgroup.name.strip("/") for p in kept] == ["A/1/0", "A/1/1"]
        kept = _Selector(exclude_fovs=["A/1/0", "B/1/1"])._filter_fit_fovs(plate)
        assert [p.zgroup.name.strip("/") for p in kept] == ["A/1/1", "B/1/0"]
        with pytest.raises(ValueError, match="At least 2 FOVs"):
            _Selector(include_wells=["A/1"], exclude_fovs=["A/1/0"])._filter_fit_fovs(plate)


@pytest.mark.parametrize(
    ("n", "replicas", "drop_last"), [(10, 3, False), (10, 3, True), (8, 4, False)]
)
def test_sharded_sampler_contiguous_equal_shards(n, replicas, drop_last):
    data = list(range(n))
    shards = []
    for rank in range(replicas):
        sampler = ShardedDistributedSampler(
            data, num_replicas=replicas, rank=rank, shuffle=True, seed=3, drop_last=drop_last
        )
        sampler.set_epoch(0)
        shard = list(sampler)
        assert len(shard) == len(sampler)
        shards.append(shard)
    assert len({len(s) for s in shards}) == 1  # equal lengths across ranks
    per_rank = len(shards[0])
    padded = list(range(n)) + list(range(n))
    for rank, shard in enumerate(shards):
        # each rank holds one contiguous block of the (padded) index list
        assert sorted(shard) == sorted(padded[rank * per_rank : (rank + 1) * per_rank])
    covered = {i for s in shards for i in s}
    if drop_last:
        assert len(covered) == per_rank * replicas
    else:
        assert covered == set(range(n))


def test_sharded_sampler_shuffles_per_epoch():
    data = list(range(100))
    sampler = ShardedDistributedSampler(data, num_replicas=2, rank=1, seed=0)
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == sorted(second) == list(range(50, 100))
    assert first != second
    assert first != sorted(first)
    again = ShardedDistributedSampler(data, num_replicas=2, rank=1, seed=0)
    again.set_epoch(0)
    assert list(again) == first  # seeded
    ordered = ShardedDistributedSampler(data, num_replicas=2, rank=0, shuffle=False)
    assert list(ordered) == list(range(50))


def test_worker_sharded_sampler_batches_alternate_shards():
    from viscy_data.distributed import WorkerShardedSampler

    sampler = WorkerShardedSampler(num_samples=37, batch_size=4, num_workers=2, seed=1)
    order = list(sampler)
    assert len(order) == len(sampler) == 2 * 5 * 4  # shards of 18/19 -> 5 batches each
    batches = [order[i : i + 4] for i in range(0, len(order), 4)]
    for i, batch in enumerate(batches):
        shard = range(0, 18) if i % 2 == 0 else range(18, 37)
        assert all(j in shard for j in batch), (i, batch)
    assert set(order) == set(range(37))  # every sample each epoch (plus a few repeats)
    assert list(sampler) != order  # reshuffled on the next iteration
    sampler.set_epoch(3)
    again = WorkerShardedSampler(num_samples=37, batch_size=4, num_workers=2, seed=1)
    again.set_epoch(3)
    assert list(sampler) == list(again)  # seeded
