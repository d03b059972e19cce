"""A table of lazily imported subcommands for application command lines.

An application's console script (``dynaclr``, ``cytoland``) maps each subcommand to the
``"module:function"`` that implements it; the module is imported only when that command
runs, so ``<app> --help`` answers without importing torch or Lightning.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["LazyCommand", "run_command"]


@dataclass(frozen=True)
class LazyCommand:
    """A subcommand whose implementation is imported when it runs.

    Parameters
    ----------
    target : str
        ``"module:function"``; ``function(argv: list[str]) -> int | None``.
    help : str
        One line for the command table.
    prefix : tuple of str
        Arguments put before the user's, e.g. ``("fit",)`` to delegate to
        :func:`viscy_utils.cli.main`.
    """

    target: str
    help: str
    prefix: tuple[str, ...] = ()

    def precheck(self, argv: Sequence[str]) -> int | None:
        """Run before the import; an exit status stops the command (subclasses override)."""
        return None

    def __call__(self, argv: Sequence[str]) -> int:
        status = self.precheck(argv)
        if status is not None:
            return status
        module_name, func_name = self.target.split(":")
        func = getattr(importlib.import_module(module_name), func_name)
        result = func([*self.prefix, *argv])
        return 0 if result is None else int(result)


def _usage(prog: str, description: str, commands: Mapping[str, LazyCommand], hint: str) -> str:
    width = max(len(name) for name in commands)
    lines = [f"usage: {prog} <command> [options]", "", description, "", "commands:"]
    lines += [f"  {name:<{width}}  {cmd.help}" for name, cmd in commands.items()]
    lines += ["", f"Run '{prog} <command> --help' for the options of a command."]
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def run_command(
    prog: str,
    description: str,
    commands: Mapping[str, LazyCommand],
    argv: Sequence[str] | None = None,
    hint: str = "",
) -> int:
    """Dispatch ``argv`` (``sys.argv[1:]`` when None) to one of ``commands``.

    ``-h/--help`` (or no arguments) prints the command table, ``-V/--version`` the
    installed version of the distribution ``prog``; an unknown command exits 2.

    Returns
    -------
    int
        The process exit status.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(prog, description, commands, hint))
        return 0
    if args[0] in ("-V", "--version"):
        from importlib.metadata import version

        print(f"{prog} {version(prog)}")
        return 0
    command = commands.get(args[0])
    if command is None:
        print(_usage(prog, description, commands, hint), file=sys.stderr)
        print(f"\n{prog}: unknown command {args[0]!r}", file=sys.stderr)
        return 2
    return command(args[1:])
