"""The published 0.1.0 API as JSON fixtures, parsed from the spec Markdown.

``shared/spec/api_0.1.0.md`` lists, per package section (``## viscy_data``), every public
class, function and constant with its module path, bases, methods and ``__init__``/call
parameters. :func:`parse` turns sections into fixture entries; as a command it prints them
(from the repository root)::

    python -m viscy_dev.api_fixtures SPEC.md SECTION [SECTION ...] \
        > packages/<pkg>/tests/fixtures/api_0.1.0.json

Each entry: ``package`` (the section, i.e. the package that exports the name at top level),
``name``, ``kind`` (class, function, constant, or alias for a typing alias), ``module``
(documented module path, or None when the spec gives none: constants and typing aliases),
``bases``, ``methods``, ``params`` (name, kind, has_default, default_repr, literal, default)
and, for constants, ``value``. The checks of these entries are in :mod:`viscy_dev.api_checks`.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["MODULES_SPEC_FILE", "SPEC_FILE", "find_spec_file", "main", "parse", "parse_modules"]

#: Where the spec lies inside the shared design folder.
SPEC_FILE = "spec/api_0.1.0.md"
#: The addendum listing every module's ``__all__`` (subpackage surfaces).
MODULES_SPEC_FILE = "spec/api_0.1.0_modules.md"

_CLASS = re.compile(r"^- class `(?P<path>[\w.]+)`\((?P<bases>.*)\)$")
_FUNCTION = re.compile(r"^- function `(?P<path>[\w.]+)\((?P<params>.*?)\)(?: -> .*)?`$")
_CONSTANT = re.compile(r"^- constant/type `(?P<name>\w+)` = `(?P<value>.*)`$")
_INIT = re.compile(r"^  - `__init__\((?P<params>.*?)\)(?: -> .*)?`$")
_METHODS = re.compile(r"^  - methods: (?P<methods>.*)$")


def _split_top_level(text: str) -> list[str]:
    """Split a parameter list on the commas that are not nested in brackets or quotes."""
    parts, depth, quote, current = [], 0, None, []
    for char in text:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _literal(text: str) -> tuple[bool, object]:
    """``(True, value)`` if ``text`` is a plain literal (numbers, str, None, bool, lists)."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False, None
    if isinstance(value, tuple):
        value = list(value)  # JSON has no tuples; the tests compare tuples and lists alike
    if isinstance(value, (dict, set)):
        return False, None
    return True, value


def _params(text: str) -> list[dict]:
    params, kind = [], "positional_or_keyword"
    for part in _split_top_level(text):
        if part == "/":
            params = [{**p, "kind": "positional_only"} for p in params]
            continue
        if part == "*":
            kind = "keyword_only"
            continue
        head, default_repr = part, None
        # split on the default's "=" (annotations such as Literal['a'] hold no bare "=")
        match = re.match(r"^(?P<head>[^=]+?)\s*=\s*(?P<default>.+)$", part)
        if match:
            head, default_repr = match["head"], match["default"]
        name = head.split(":", 1)[0].strip()
        if name.startswith("**"):
            params.append({"name": name[2:], "kind": "var_keyword"})
            continue
        if name.startswith("*"):
            params.append({"name": name[1:], "kind": "var_positional"})
            kind = "keyword_only"
            continue
        entry = {"name": name, "kind": kind, "has_default": default_repr is not None}
        if default_repr is not None:
            literal, value = _literal(default_repr)
            entry.update(default_repr=default_repr, literal=literal, default=value)
        params.append(entry)
    return params


def _split_path(path: str) -> tuple[str | None, str]:
    module, _, name = path.rpartition(".")
    # typing aliases are listed as ``typing.X`` / ``builtins.X``: no module path documented
    return (None if module in ("typing", "builtins") else module), name


def parse(markdown: str, sections: list[str]) -> list[dict]:
    """Entries of the given ``## <section>`` headings, in document order."""
    entries: list[dict] = []
    for section in sections:
        body = markdown.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
        for line in body.splitlines():
            base = {"package": section}
            if match := _CLASS.match(line):
                module, name = _split_path(match["path"])
                bases = [b.strip() for b in match["bases"].split(",")]
                entries.append(
                    {**base, "name": name, "kind": "class", "module": module, "bases": bases}
                    | {"methods": [], "params": []}
                )
            elif match := _FUNCTION.match(line):
                module, name = _split_path(match["path"])
                params = [] if match["params"] == "?" else _params(match["params"])
                alias = match["path"].split(".")[0] in ("typing", "builtins")
                kind = "alias" if alias else "function"
                entries.append(
                    {**base, "name": name, "kind": kind, "module": module}
                    | {"params": [] if alias else params}
                )
            elif match := _CONSTANT.match(line):
                literal, value = _literal(match["value"])
                if not literal:
                    value = ast.literal_eval(match["value"])  # dict constants
                entries.append(
                    {**base, "name": match["name"], "kind": "constant", "module": None}
                    | {"value": value}
                )
            elif (match := _INIT.match(line)) and entries:
                entries[-1]["params"] = _params(match["params"])
            elif (match := _METHODS.match(line)) and entries:
                entries[-1]["methods"] = [m.strip() for m in match["methods"].split(",")]
    return entries


# ``- function `name` (defined in `module`): `name(params) -> ret` `` and the like
_MODULE_ENTRY = re.compile(
    r"^- (?P<kind>\w+) `(?P<name>\w+)` \(defined in `(?P<module>[\w.]*)`\)(?:: `(?P<sig>.*)`)?$"
)


def _signature_params(name: str, sig: str) -> list[dict]:
    """Parameters of ``name(params) -> ret`` (the parenthesis matching the first one)."""
    text = sig[len(name) :]
    depth = 0
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0:
            return _params(text[1:i])
    raise ValueError(f"unbalanced signature: {sig}")


def parse_modules(markdown: str, sections: list[str]) -> list[dict]:
    """Entries of the given ``## `module` `` headings of the modules addendum.

    Each entry's ``package`` is the module whose ``__all__`` lists the name and ``module``
    the module that defines it (None for constants listed without one); classes carry no
    bases or methods there (the main spec has them).
    """
    entries: list[dict] = []
    for section in sections:
        body = markdown.split(f"\n## `{section}`\n", 1)[1].split("\n## ", 1)[0]
        for line in body.splitlines():
            match = _MODULE_ENTRY.match(line)
            if not match:
                continue
            kind = match["kind"]
            entry = {"package": section, "name": match["name"], "module": match["module"] or None}
            if kind in ("class", "function") and match["sig"]:
                params = _signature_params(match["name"], match["sig"])
                entry |= {"kind": kind, "params": params}
                if kind == "class":
                    entry |= {"bases": [], "methods": []}
            else:
                entry |= {"kind": "object"}
            entries.append(entry)
    return entries


def find_spec_file(start: str | os.PathLike, spec_file: str = SPEC_FILE) -> Path | None:
    """The spec, if found: ``$VISCY_SHARED/<spec_file>``, else ``shared/<spec_file>`` beside
    ``start`` or any folder above it (a clone with ``shared/`` beside it, or a worktree)."""
    candidates = [Path(os.environ["VISCY_SHARED"])] if os.environ.get("VISCY_SHARED") else []
    candidates += [folder / "shared" for folder in Path(start).resolve().parents]
    return next((c / spec_file for c in candidates if (c / spec_file).is_file()), None)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m viscy_dev.api_fixtures SPEC.md SECTION [SECTION ...]``: print the fixture."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print(
            "usage: python -m viscy_dev.api_fixtures SPEC.md SECTION [SECTION ...]", file=sys.stderr
        )
        return 2
    spec_path, *sections = args
    text = Path(spec_path).read_text(encoding="utf-8")
    missing = [s for s in sections if f"\n## {s}\n" not in text]
    if missing:
        print(f"error: {spec_path} has no section(s) {missing}", file=sys.stderr)
        return 2
    print(json.dumps(parse(text, sections), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
