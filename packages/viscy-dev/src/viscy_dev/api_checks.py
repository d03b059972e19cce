"""Checks that code still honours the published 0.1.0 API, and the test class that runs them.

Each ``check_*`` function takes one fixture entry (:mod:`viscy_dev.api_fixtures`) and raises
AssertionError where our code breaks a call or import written against 0.1.0; it only
imports and inspects (``inspect.signature``): no model or dataset is constructed.
:class:`ConformanceTests` runs every check as its own test case per name; a package's
``tests/test_api_spec.py`` subclasses it.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest

from viscy_dev.api_fixtures import SPEC_FILE, find_spec_file, parse

__all__ = [
    "ConformanceTests",
    "MissingExtra",
    "check_bases",
    "check_constant",
    "check_methods",
    "check_module_path",
    "check_signature",
    "check_top_level",
    "import_module",
    "signature_mismatches",
    "with_changed_defaults",
]


def with_changed_defaults(
    entry: dict, changed_defaults: dict[tuple[str, str], tuple[object, str]]
) -> dict:
    """``entry`` with documented defaults replaced where ``(name, parameter)`` deliberately
    changed its default (every call written against 0.1.0 still works)."""
    params = []
    for param in entry.get("params", []):
        changed = changed_defaults.get((entry["name"], param["name"]))
        params.append({**param, "default": changed[0]} if changed else param)
    return {**entry, "params": params}


class MissingExtra(Exception):
    """The module needs an optional extra that is not installed (the test should skip)."""


def import_module(path: str) -> Any:
    """Import ``path``; an ImportError that tells the user to ``pip install`` an extra is
    re-raised as :class:`MissingExtra`."""
    try:
        return importlib.import_module(path)
    except ImportError as error:
        if "pip install" in str(error):
            raise MissingExtra(str(error)) from error
        raise


def _get(module_path: str, name: str) -> Any:
    module = import_module(module_path)
    try:
        return getattr(module, name)
    except ImportError as error:  # lazy PEP 562 exports import on attribute access
        if "pip install" in str(error):
            raise MissingExtra(str(error)) from error
        raise
    except AttributeError:
        raise AssertionError(f"{module_path} has no attribute {name!r}") from None


def resolve(entry: dict) -> Any:
    """The object at the documented module path (the package top level if none)."""
    return _get(entry["module"] or entry["package"], entry["name"])


def check_module_path(entry: dict) -> None:
    obj = _get(entry["module"], entry["name"])
    assert obj is not None, f"{entry['module']}.{entry['name']} is None"


def check_top_level(entry: dict) -> None:
    top = _get(entry["package"], entry["name"])
    package = import_module(entry["package"])
    exported = getattr(package, "__all__", None)
    if exported is not None:
        assert entry["name"] in exported, f"{entry['name']} not in {entry['package']}.__all__"
    if entry["module"]:
        at_module = _get(entry["module"], entry["name"])
        assert top is at_module, (
            f"{entry['package']}.{entry['name']} is not {entry['module']}.{entry['name']}"
        )


def _normalize(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_normalize(v) for v in value]
    return value


def _same_literal(ours: Any, documented: Any) -> bool:
    """Equal as plain literals: tuples and lists alike, ints and floats alike, bools apart."""
    ours, documented = _normalize(ours), _normalize(documented)
    if isinstance(ours, list) and isinstance(documented, list):
        return len(ours) == len(documented) and all(map(_same_literal, ours, documented))
    numbers = all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in (ours, documented)
    )
    return (numbers or type(ours) is type(documented)) and ours == documented


# ``<function f at 0x7f...>``: the address differs per process
_ADDRESS = re.compile(r" at 0x[0-9a-f]+>")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def signature_mismatches(obj: Any, entry: dict) -> list[str]:
    """Every way in which ``obj``'s parameters break calls written against the spec."""
    is_class = isinstance(obj, type)
    params = list(inspect.signature(obj.__init__ if is_class else obj).parameters.values())
    if is_class:
        params = params[1:]  # self
    ours = {p.name: p for p in params}
    ours_positional = [p.name for p in params if p.kind in _POSITIONAL]
    kinds = {p.kind for p in params}
    problems = []
    documented = entry["params"]
    index = 0
    for param in documented:
        name, kind = param["name"], param["kind"]
        if kind == "var_positional":
            if inspect.Parameter.VAR_POSITIONAL not in kinds:
                problems.append(f"takes no *{name}")
            continue
        if kind == "var_keyword":
            if inspect.Parameter.VAR_KEYWORD not in kinds:
                problems.append(f"takes no **{name}")
            continue
        if name not in ours:
            problems.append(f"lacks parameter {name!r}")
            index += kind != "keyword_only"
            continue
        here = ours[name]
        if kind != "keyword_only":
            at = ours_positional[index] if index < len(ours_positional) else None
            if at != name:
                problems.append(f"positional parameter {index} is {at!r}, documented {name!r}")
            elif kind == "positional_or_keyword" and here.kind is not here.POSITIONAL_OR_KEYWORD:
                problems.append(f"{name!r} cannot be passed by keyword")
            index += 1
        elif here.kind not in (here.POSITIONAL_OR_KEYWORD, here.KEYWORD_ONLY):
            problems.append(f"{name!r} cannot be passed by keyword")
        if param["has_default"]:
            if here.default is here.empty:
                problems.append(f"{name!r} has no default, documented {param['default_repr']}")
            elif param["literal"]:
                if not _same_literal(here.default, param["default"]):
                    problems.append(
                        f"{name!r} defaults to {here.default!r}, documented {param['default_repr']}"
                    )
            elif _ADDRESS.sub(">", repr(here.default)) != _ADDRESS.sub(">", param["default_repr"]):
                problems.append(
                    f"{name!r} defaults to {here.default!r}, documented {param['default_repr']}"
                )
    named = {p["name"] for p in documented}
    for p in params:
        if (
            p.name not in named
            and p.default is p.empty
            and p.kind in (*_POSITIONAL, p.KEYWORD_ONLY)
        ):
            problems.append(f"requires undocumented parameter {p.name!r}")
    return problems


def check_signature(entry: dict) -> None:
    obj = resolve(entry)
    problems = signature_mismatches(obj, entry)
    assert not problems, f"{entry['module']}.{entry['name']}: " + "; ".join(problems)


def _resolve_base(base: str, package: str) -> type | None:
    module, _, name = base.rpartition(".")
    if module == "torch":
        import torch.utils.data

        return getattr(torch.nn, name, None) or getattr(torch.utils.data, name)
    if module == "lightning":
        from lightning import pytorch
        from lightning.pytorch import callbacks

        return getattr(pytorch, name, None) or getattr(callbacks, name)
    if module == "monai":
        import monai.transforms

        return getattr(monai.transforms, name)
    if module == "enum":
        return getattr(enum, name)
    if module == "builtins":
        import builtins

        return None if name == "object" else getattr(builtins, name)
    if module.split(".")[0] == package.split(".")[0]:
        return _get(module, name)
    return None  # abc.ABC and the like: an implementation detail


def check_bases(entry: dict) -> None:
    cls = resolve(entry)
    for base in entry["bases"]:
        resolved = _resolve_base(base, entry["package"])
        if resolved is not None:
            assert issubclass(cls, resolved), f"{entry['name']} is not a subclass of {base}"


def check_methods(entry: dict) -> None:
    cls = resolve(entry)
    missing = [m for m in entry["methods"] if not callable(getattr(cls, m, None))]
    assert not missing, f"{entry['name']} lacks methods {missing}"


def check_constant(entry: dict) -> None:
    value = resolve(entry)
    assert _normalize(value) == _normalize(entry["value"]), (
        f"{entry['name']} is {value!r}, documented {entry['value']!r}"
    )


# check name (as used in ``mismatches``) -> (check, which entries it applies to)
_CHECKS = {
    "module_path": (check_module_path, lambda e: bool(e["module"])),
    "top_level": (check_top_level, lambda e: True),
    "signature": (check_signature, lambda e: e["kind"] in ("class", "function")),
    "bases": (check_bases, lambda e: e["kind"] == "class"),
    "methods": (check_methods, lambda e: e["kind"] == "class"),
    "constant": (check_constant, lambda e: e["kind"] == "constant"),
}


class ConformanceTests:
    """The 0.1.0 conformance tests of one package; subclass it as ``Test...`` and set:

    Attributes
    ----------
    sections : list of str
        Spec sections the fixture was parsed from, e.g. ``["viscy_data"]``.
    fixture : Path
        The package's ``api_0.1.0.json``.
    spec_file, parser
        The spec the fixture comes from (default ``spec/api_0.1.0.md`` and
        :func:`~viscy_dev.api_fixtures.parse`; the modules addendum has
        :func:`~viscy_dev.api_fixtures.parse_modules`).
    mismatches : dict
        ``(check, name) -> reason``: known mismatches, expected to fail (strict xfail) so a
        fix shows up as XPASS and the entry must then be removed. ``check`` is one of
        ``module_path, top_level, signature, bases, methods, constant``.
    changed_defaults : dict
        ``(name, parameter) -> (our default, why)``: deliberate changes of a default; every
        call written against 0.1.0 still works.
    """

    sections: ClassVar[list[str]] = []
    fixture: ClassVar[Path | None] = None
    #: The spec file the fixture was parsed from, and its parser.
    spec_file: ClassVar[str] = SPEC_FILE
    parser: ClassVar[Any] = staticmethod(parse)
    mismatches: ClassVar[dict[tuple[str, str], str]] = {}
    changed_defaults: ClassVar[dict[tuple[str, str], tuple[object, str]]] = {}

    @classmethod
    def entries(cls) -> list[dict]:
        """The fixture's entries."""
        if cls.fixture is None:
            raise TypeError(f"{cls.__name__} must set `fixture` (the package's api_0.1.0.json)")
        return json.loads(Path(cls.fixture).read_text(encoding="utf-8"))

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """One case per fixture entry that ``check_<name>`` applies to (pytest hook)."""
        check = getattr(metafunc.function, "_check", None)
        if check is None or "entry" not in metafunc.fixturenames:
            return
        applies = _CHECKS[check][1]
        params = []
        for entry in self.entries():
            if not applies(entry):
                continue
            reason = self.mismatches.get((check, entry["name"]))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(entry, id=entry["name"], marks=marks))
        if not params:  # e.g. no constants in these sections: say so rather than run nothing
            why = f"no 0.1.0 entry of {self.sections} is checked by {check!r}"
            params = [pytest.param(None, id="none", marks=pytest.mark.skip(reason=why))]
        metafunc.parametrize("entry", params)

    def _run(self, check: str, entry: dict) -> None:
        try:
            _CHECKS[check][0](with_changed_defaults(entry, self.changed_defaults))
        except MissingExtra as error:
            pytest.skip(f"optional extra missing: {error}")

    def test_fixture_matches_the_spec_file_when_present(self) -> None:
        spec = find_spec_file(self.fixture, self.spec_file)
        if spec is None:
            pytest.skip(f"shared/{self.spec_file} is not beside this checkout")
        assert self.parser(spec.read_text(encoding="utf-8"), self.sections) == self.entries()

    def test_every_mismatch_names_a_documented_name(self) -> None:
        entries = self.entries()
        assert {check for check, _ in self.mismatches} <= set(_CHECKS)
        assert {name for _, name in self.mismatches} <= {e["name"] for e in entries}
        params = {(e["name"], p["name"]) for e in entries for p in e.get("params", [])}
        assert set(self.changed_defaults) <= params

    def test_imports_from_documented_module(self, entry: dict) -> None:
        self._run("module_path", entry)

    def test_imports_from_package_top_level(self, entry: dict) -> None:
        self._run("top_level", entry)

    def test_signature_accepts_documented_calls(self, entry: dict) -> None:
        self._run("signature", entry)

    def test_class_keeps_documented_bases(self, entry: dict) -> None:
        self._run("bases", entry)

    def test_class_keeps_documented_methods(self, entry: dict) -> None:
        self._run("methods", entry)

    def test_constant_has_documented_value(self, entry: dict) -> None:
        self._run("constant", entry)

    test_imports_from_documented_module._check = "module_path"
    test_imports_from_package_top_level._check = "top_level"
    test_signature_accepts_documented_calls._check = "signature"
    test_class_keeps_documented_bases._check = "bases"
    test_class_keeps_documented_methods._check = "methods"
    test_constant_has_documented_value._check = "constant"
