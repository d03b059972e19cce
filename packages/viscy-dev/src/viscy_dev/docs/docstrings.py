"""Check that every public class and function documents its parameters (numpy style).

Usage: ``uv run python -m viscy_dev.docs docstrings``: one line per problem, exit status 1 if any.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import re

from viscy_dev.docs.api_pages import installed_packages

_HEADER = re.compile(r"^\s*[A-Z][A-Za-z ]+\s*\n\s*-{3,}\s*$", re.MULTILINE)


def documented_parameters(doc: str, section: str = "Parameters") -> set[str]:
    """Names listed in the ``section`` section (``Parameters``) of a numpy-style docstring."""
    doc = inspect.cleandoc(doc)
    match = re.search(rf"^(\s*){section}\s*\n\s*-{{3,}}\s*\n", doc, re.MULTILINE)
    if match is None:
        return set()
    body = doc[match.end() :]
    end = _HEADER.search(body)
    if end is not None:
        body = body[: end.start()]
    names: set[str] = set()
    for line in body.splitlines():
        if line and not line[0].isspace():
            head = line.split(":", 1)[0]
            for name in head.split(","):
                names.add(name.strip().lstrip("*"))
    return names


def _parameters(obj) -> list[str]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [
        p.name
        for p in sig.parameters.values()
        if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def problems(package: str) -> list[str]:
    """Problems of one package's public names."""
    try:
        module = importlib.import_module(package)
    except ImportError:
        return []
    found = []
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        where = f"{package}.{name}"
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        doc = inspect.getdoc(obj) or ""
        if not doc.strip():
            found.append(f"{where}: no docstring")
            continue
        if inspect.isclass(obj):
            if _is_typeddict(obj) or issubclass(obj, enum.Enum):
                continue
            init = obj.__dict__.get("__init__")
            params = _parameters(obj)
            documented = documented_parameters(doc)
            if init is not None and init.__doc__:
                documented |= documented_parameters(init.__doc__)
            if _is_namedtuple(obj):
                # NamedTuple fields are attributes in numpy style; griffe sees no __init__
                # and warns about a Parameters section.
                documented |= documented_parameters(doc, "Attributes")
        else:
            params = _parameters(obj)
            documented = documented_parameters(doc)
        missing = [p for p in params if p not in documented]
        if missing:
            found.append(f"{where}: parameters not documented: {', '.join(missing)}")
    return found


def _is_namedtuple(cls) -> bool:
    return issubclass(cls, tuple) and hasattr(cls, "_fields")


def _is_typeddict(cls) -> bool:
    return hasattr(cls, "__total__") and hasattr(cls, "__required_keys__")


def main() -> int:
    """Print every problem; exit status 1 if there is any."""
    found = [line for package in installed_packages().values() for line in problems(package)]
    for line in found:
        print(line)
    print(f"{len(found)} problem(s)")
    return 1 if found else 0
