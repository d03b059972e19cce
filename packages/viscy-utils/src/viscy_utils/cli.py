"""The ``viscy`` command line (placeholder until the trainer CLI lands)."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``viscy`` console script."""
    parser = argparse.ArgumentParser(prog="viscy", description="VisCy training CLI.")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
