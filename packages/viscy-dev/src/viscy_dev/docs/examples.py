"""The code blocks of Getting started and the guides: run the runnable ones, check the others.

A fenced block right after a ``<!-- run -->`` line is executed, in the order of the site's
navigation, in one working folder and one Python namespace (Getting started writes the
synthetic plate the guides read):

* ``python`` blocks are executed as they are;
* ``bash`` blocks hold ``dynaclr``, ``cytoland`` or ``viscy`` commands, one per line
  (``\\`` continues a line, ``#`` starts a comment); each runs in this process through the
  command's own ``main`` and must exit 0.

Every other ``dynaclr``/``cytoland``/``viscy`` command line in a ``bash`` block is checked
against the command's ``--help``: the subcommand exists and every option it uses is one the
command accepts (Lightning commands such as ``fit`` take config keys and are not checked).

Usage: ``uv run python -m viscy_dev.docs examples [--work DIR]`` (the test suite runs them).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import io
import os
import re
import shlex
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from viscy_dev.docs._root import ROOT

CLIS = {"dynaclr": "dynaclr.cli", "cytoland": "cytoland.cli", "viscy": "viscy_utils.cli"}
"""Console scripts a documented command line may start with, and their modules."""

LIGHTNING_COMMANDS = {"fit", "validate", "test", "predict", "export"}
"""Subcommands that take jsonargparse config keys (``--trainer.devices``), not checked."""

_NESTED = {("dynaclr", "plot")}
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_OPTION = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    line: int
    language: str
    code: str
    run: bool


def pages() -> list[Path]:
    """The Markdown pages of the site, in the order of its navigation."""
    config = tomllib.loads((ROOT / "zensical.toml").read_text())["project"]
    docs = ROOT / config.get("docs_dir", "docs")

    def walk(entries) -> Iterator[str]:
        for entry in entries:
            value = entry if isinstance(entry, str) else next(iter(entry.values()))
            if isinstance(value, str):
                yield value
            else:
                yield from walk(value)

    return [docs / page for page in walk(config["nav"])]


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of ``page``; ``run`` when a ``<!-- run -->`` line precedes one."""
    text = page.read_text()
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        found.append(
            Block(
                page=page.relative_to(ROOT).as_posix(),
                line=text.count("\n", 0, match.start()) + 1,
                language=match.group(1),
                code=match.group(2),
                run=before.strip() == "<!-- run -->",
            )
        )
    return found


def command_lines(code: str) -> list[list[str]]:
    """The commands of a shell block, split into words (continuations joined, comments cut)."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:2] == ["uv", "run"]:
            words = words[2:]
        if words:
            commands.append(words)
    return commands


def _main(program: str):
    return importlib.import_module(CLIS[program]).main


def run_command(words: list[str]) -> tuple[int, str]:
    """Run one documented command in this process; its exit status and what it printed."""
    if words[0] not in CLIS:
        raise ValueError(f"only {sorted(CLIS)} commands can run in a docs block: {words}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            rc = _main(words[0])(words[1:])
        except SystemExit as exit_:
            rc = exit_.code if isinstance(exit_.code, int) else 1
    return int(rc or 0), out.getvalue()


@functools.cache
def _help(words: tuple[str, ...]) -> str:
    return run_command([*words, "--help"])[1]


def _subcommand(words: list[str]) -> list[str]:
    depth = 2 if tuple(words[:2]) in _NESTED else 1
    return words[1 : 1 + depth]


def option_problems(words: list[str]) -> list[str]:
    """What is wrong with one documented command line (empty when nothing is)."""
    sub = _subcommand(words)
    if not sub or sub[0].startswith("-"):
        return []
    listing = _help((words[0],))
    names = set(re.findall(r"^\s{2}([a-z][\w-]*)\s", listing, flags=re.MULTILINE))
    if sub[0] not in names:
        return [f"`{words[0]} {sub[0]}`: no such command"]
    if sub[0] in LIGHTNING_COMMANDS:
        return []
    accepted = set(_OPTION.findall(_help((words[0], *sub))))
    used = [w.split("=", 1)[0] for w in words[1 + len(sub) :] if w.startswith("-")]
    return [
        f"`{' '.join(words[: 1 + len(sub)])}` has no option {o}" for o in used if o not in accepted
    ]


def run_all(work: Path) -> list[str]:
    """Run every runnable block in ``work`` and check every command line; the problems."""
    problems: list[str] = []
    namespace: dict = {"__name__": "__docs__"}
    previous = Path.cwd()
    os.chdir(work)
    try:
        for page in pages():
            for block in blocks(page):
                where = f"{block.page}:{block.line}"
                if block.run and block.language == "python":
                    try:
                        exec(compile(block.code, where, "exec"), namespace)
                    except Exception as err:
                        problems.append(f"{where}: {err!r}")
                elif block.language == "bash":
                    for words in command_lines(block.code):
                        if block.run:
                            rc, output = run_command(words)
                            if rc != 0:
                                problems.append(
                                    f"{where}: `{shlex.join(words)}` exit {rc}\n{output[-2000:]}"
                                )
                        elif words[0] in CLIS:
                            problems += [f"{where}: {p}" for p in option_problems(words)]
    finally:
        os.chdir(previous)
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run the examples; print each problem; exit status 1 if any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="viscy-docs-examples-") as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        problems = run_all(work)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0
