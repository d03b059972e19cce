"""``multi``: the multi-experiment triplet loader (dynaclr) against raw tensorstore reads."""

from _loader_multi import add_arguments, run  # noqa: F401
