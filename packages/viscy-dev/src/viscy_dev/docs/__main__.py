"""``python -m viscy_dev.docs {build,api,docstrings,examples,figures}``."""

from __future__ import annotations

import sys

from viscy_dev.docs import api_pages, build, docstrings, examples, figures

COMMANDS = {
    "build": build.main,
    "api": api_pages.main,
    "docstrings": docstrings.main,
    "examples": examples.main,
    "figures": figures.main,
}
_TAKE_ARGS = (api_pages.main, build.main, examples.main, figures.main)


def main(argv: list[str] | None = None) -> int:
    """Run one docs command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print(
            (
                "usage: python -m viscy_dev.docs "
                "{build [--no-checks],api [--check],docstrings,"
                "examples [--work DIR],figures [--only NAME]}"
            ),
            file=sys.stderr,
        )
        return 2
    command = COMMANDS[args[0]]
    return command(args[1:]) if command in _TAKE_ARGS else command()


if __name__ == "__main__":
    sys.exit(main())
