"""DynaCLR: contrastive learning of cell dynamics from time-lapse microscopy."""

__all__: list[str] = []
