"""NT-Xent (SimCLR) and NT-Xent with hard-negative concentration (HCL).

Both are called like pytorch-metric-learning losses, ``loss(embeddings, labels)``: rows
with equal labels are positive pairs, rows with different labels are negatives. For a
batch of B anchors and their B positives use ``labels = torch.arange(B).repeat(2)``.

For anchor i, positive p and the negatives k of i (cosine similarities s, temperature t):

    loss_ip = -log( e^{s_ip/t} / (e^{s_ip/t} + sum_k w_ik e^{s_ik/t}) )

averaged over all ordered positive pairs, with hard-negative weights
(Robinson et al., ICLR 2021, "Contrastive Learning with Hard Negative Samples")

    w_ik = n_neg_i * e^{beta s_ik} / sum_k' e^{beta s_ik'}

which average 1 over the negatives, so ``beta = 0`` is exactly NT-Xent.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from torch import Tensor

__all__ = ["NTXentHCL", "NTXentLoss"]


def _pml_defaults() -> dict[str, Any]:
    """Defaults of the keyword options of pytorch-metric-learning's ``NTXentLoss`` and bases."""
    defaults: dict[str, Any] = {}
    for cls in reversed(pml_losses.NTXentLoss.__mro__):
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        for name, param in inspect.signature(init).parameters.items():
            if param.default is not inspect.Parameter.empty:
                defaults[name] = param.default
    return defaults


class NTXentLoss(pml_losses.NTXentLoss):
    """Normalized temperature-scaled cross entropy (NT-Xent, SimCLR).

    A subclass of pytorch-metric-learning's ``NTXentLoss`` (as in 0.1.0): extra keyword
    arguments (``distance``, ``reducer``, ...) go to it, and calls with ``indices_tuple``,
    ``ref_emb`` or ``ref_labels`` are computed by it; plain ``loss(embeddings, labels)``
    calls use the formula above (equal to pytorch-metric-learning's for ``beta = 0``).

    Parameters
    ----------
    temperature : float
        Temperature t (after any warm-up).
    temperature_schedule : {"constant", "cosine"}
        "cosine" anneals from ``temperature_start`` to ``temperature`` over
        ``temperature_warmup_epochs``; advance it with :meth:`set_epoch`.
    temperature_start : float
        Temperature at epoch 0 for the cosine schedule.
    temperature_warmup_epochs : int
        Length of the cosine schedule in epochs.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        temperature_schedule: Literal["cosine", "constant"] = "constant",
        temperature_start: float = 0.1,
        temperature_warmup_epochs: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(temperature=temperature, **kwargs)
        # options a config sets to something other than pytorch-metric-learning's default
        # (jsonargparse passes every inherited default explicitly)
        defaults = _pml_defaults()
        self._pml_kwargs = sorted(
            k for k, v in kwargs.items() if k not in defaults or defaults[k] != v
        )
        if temperature <= 0 or temperature_start <= 0:
            raise ValueError(
                f"temperatures must be > 0, got temperature={temperature}, "
                f"temperature_start={temperature_start}."
            )
        if temperature_schedule not in ("cosine", "constant"):
            raise ValueError(
                "temperature_schedule must be 'cosine' or 'constant', "
                f"got {temperature_schedule!r}."
            )
        self.base_temperature = float(temperature)
        self.temperature = float(temperature)
        self.temperature_schedule = temperature_schedule
        self.temperature_start = float(temperature_start)
        self.temperature_warmup_epochs = int(temperature_warmup_epochs)
        self.epoch = 0

    @property
    def current_temperature(self) -> float:
        """Temperature used now (depends on the schedule and :meth:`set_epoch`)."""
        if self.temperature_schedule == "constant" or self.temperature_warmup_epochs <= 0:
            return self.base_temperature
        progress = min(self.epoch / self.temperature_warmup_epochs, 1.0)
        weight = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.base_temperature + (self.temperature_start - self.base_temperature) * weight

    def set_epoch(self, epoch: int) -> None:
        """Advance the temperature schedule (call at the start of every training epoch)."""
        self.epoch = int(epoch)
        # pytorch-metric-learning's own computation reads ``self.temperature``
        self.temperature = self.current_temperature

    def step(self, epoch: int) -> None:
        """0.1.0 name of :meth:`set_epoch`."""
        self.set_epoch(epoch)

    def _beta(self) -> float:
        return 0.0

    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor | None = None,
        indices_tuple: Any = None,
        ref_emb: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        """Mean loss over positive pairs of ``embeddings`` (N, D) grouped by ``labels`` (N,)."""
        pml_call = indices_tuple is not None or ref_emb is not None or ref_labels is not None
        if pml_call or self._pml_kwargs:
            if self._beta() != 0.0:
                raise ValueError(
                    f"{type(self).__name__} with beta={self._beta()} supports only "
                    "loss(embeddings, labels) with default pytorch-metric-learning options; "
                    "use beta=0 for indices_tuple / ref_emb / distance / reducer."
                )
            self.temperature = self.current_temperature
            return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)
        if labels is None:
            raise ValueError(f"{type(self).__name__} needs labels (rows with equal labels pair).")
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (N, D), got shape {tuple(embeddings.shape)}.")
        if labels.shape != (embeddings.shape[0],):
            raise ValueError(
                f"labels must have shape ({embeddings.shape[0]},), got {tuple(labels.shape)}."
            )
        return _ntxent_hcl(
            embeddings, labels.to(embeddings.device), self.current_temperature, self._beta()
        )


class NTXentHCL(NTXentLoss):
    """NT-Xent with hard-negative concentration ``beta`` (``beta = 0``: plain NT-Xent).

    Parameters
    ----------
    temperature, temperature_schedule, temperature_start, temperature_warmup_epochs
        See :class:`NTXentLoss`.
    beta : float
        Concentration on hard (similar) negatives; >= 0.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        beta: float = 0.5,
        temperature_schedule: Literal["cosine", "constant"] = "constant",
        temperature_start: float = 0.1,
        temperature_warmup_epochs: int = 50,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            temperature=temperature,
            temperature_schedule=temperature_schedule,
            temperature_start=temperature_start,
            temperature_warmup_epochs=temperature_warmup_epochs,
            **kwargs,
        )
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}.")
        self.beta = float(beta)

    def _beta(self) -> float:
        return self.beta


def _ntxent_hcl(embeddings: Tensor, labels: Tensor, temperature: float, beta: float) -> Tensor:
    # float32 throughout: bf16 exp/logsumexp over a batch loses too much precision
    x = F.normalize(embeddings.float(), dim=1)
    sim = x @ x.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    neg_inf = torch.finfo(sim.dtype).min
    logits = sim / temperature
    n_neg = neg_mask.sum(dim=1, keepdim=True)
    if beta == 0.0:
        log_w = torch.zeros_like(sim)
    else:
        scaled = (beta * sim).masked_fill(~neg_mask, neg_inf)
        log_w = (
            torch.log(n_neg.clamp(min=1).to(sim.dtype))
            + scaled
            - scaled.logsumexp(dim=1, keepdim=True)
        )
    # log sum_k w_ik e^{s_ik / t} per anchor; -inf (a very negative number) without negatives
    neg_term = (logits + log_w).masked_fill(~neg_mask, neg_inf).logsumexp(dim=1)
    anchor, positive = pos_mask.nonzero(as_tuple=True)
    if anchor.numel() == 0:
        return embeddings.sum() * 0.0
    pos_logit = logits[anchor, positive]
    has_neg = n_neg[anchor, 0] > 0
    denom = torch.where(has_neg, torch.logaddexp(pos_logit, neg_term[anchor]), pos_logit)
    return (denom - pos_logit).mean()
