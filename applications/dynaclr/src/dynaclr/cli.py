"""The ``dynaclr`` command line (placeholder until the application lands)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dynaclr`` console script."""
    parser = argparse.ArgumentParser(
        prog="dynaclr", description="DynaCLR: contrastive learning of cell dynamics."
    )
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
