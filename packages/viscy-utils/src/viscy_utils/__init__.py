"""Training infrastructure for VisCy: CLI, callbacks, preprocessing, evaluation."""

__all__: list[str] = []
