"""Select wells and FOVs of an HCS plate for training."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iohub.ngff import Plate, Position

__all__ = ["SelectWell", "filter_fov_names"]


def _well_of(fov_name: str) -> str:
    return "/".join(fov_name.strip("/").split("/")[:2])


def filter_fov_names(
    fov_names: Sequence[str],
    include_wells: Iterable[str] | None = None,
    exclude_fovs: Iterable[str] | None = None,
    include_fovs: Iterable[str] | None = None,
) -> list[str]:
    """Filter FOV names (``"A/1/0"``) by well and by name, keeping their order.

    Parameters
    ----------
    fov_names : Sequence[str]
        FOV names of a plate.
    include_wells : Iterable[str], optional
        Keep only FOVs of these wells (``"A/1"``); ``None`` keeps all wells.
    exclude_fovs : Iterable[str], optional
        Drop these FOVs.
    include_fovs : Iterable[str], optional
        Keep only these FOVs; ``None`` keeps all.
    """
    wells = None if include_wells is None else {w.strip("/") for w in include_wells}
    excluded = {f.strip("/") for f in exclude_fovs or ()}
    included = None if include_fovs is None else {f.strip("/") for f in include_fovs}
    kept = []
    for name in fov_names:
        key = name.strip("/")
        if wells is not None and _well_of(key) not in wells:
            continue
        if key in excluded:
            continue
        if included is not None and key not in included:
            continue
        kept.append(name)
    return kept


class SelectWell:
    """Mixin for DataModules: choose the FOVs used for fitting by well and FOV name.

    Classes using it set ``self._include_wells`` (well names such as ``"A/1"``, or ``None``
    for all wells) and ``self._exclude_fovs`` (FOV names such as ``"A/1/0"``, or ``None``).
    """

    _include_wells: list[str] | None = None
    _exclude_fovs: list[str] | None = None

    def _filter_fit_fovs(self, plate: Plate) -> list[Position]:
        """Positions of ``plate`` kept by the well and FOV filters.

        Raises
        ------
        ValueError
            If fewer than two FOVs remain (one is needed for training, one for validation).
        """
        positions = dict(plate.positions())
        kept = filter_fov_names(list(positions), self._include_wells, self._exclude_fovs)
        if len(kept) < 2:
            raise ValueError(
                f"At least 2 FOVs are needed for training and validation, {len(kept)} left in "
                f"'{plate.zgroup.store}' after filtering (include_wells={self._include_wells}, "
                f"exclude_fovs={self._exclude_fovs})"
            )
        return [positions[name] for name in kept]
