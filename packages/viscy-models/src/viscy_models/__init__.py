"""Neural network architectures for microscopy."""

__all__: list[str] = []
