"""Variational autoencoders."""

from typing import TYPE_CHECKING

from viscy_models._lazy import lazy_exports

_EXPORTS = {
    "BetaVae25D": "viscy_models.vae.beta_vae_25d",
    "BetaVaeMonai": "viscy_models.vae.beta_vae_monai",
}
__all__ = [
    "BetaVae25D",
    "BetaVaeMonai",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from viscy_models.vae.beta_vae_25d import BetaVae25D
    from viscy_models.vae.beta_vae_monai import BetaVaeMonai
