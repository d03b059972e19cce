"""Batched, GPU-friendly dictionary transforms for microscopy."""

__all__: list[str] = []
