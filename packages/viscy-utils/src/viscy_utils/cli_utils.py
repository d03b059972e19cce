"""Small helpers shared by command-line tools: config loading and Markdown tables."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

BASE_KEY = "base"


def merge_configs(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge two config dictionaries recursively.

    Nested mappings are merged key by key; any other value (lists included) in
    ``override`` replaces the one in ``base``. Neither input is modified.

    Parameters
    ----------
    base : Mapping[str, Any]
        The config to start from.
    override : Mapping[str, Any]
        The config whose values win.

    Returns
    -------
    dict[str, Any]
        A new merged dictionary.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_configs(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(path: str | Path, base_key: str = BASE_KEY) -> dict[str, Any]:
    """Load a YAML config, resolving its ``base:`` files first.

    A config may name one or more base configs (``base: other.yml`` or a list),
    with paths relative to the config's own file. Bases are loaded (recursively),
    merged in the order listed, and the config itself is merged on top.

    Parameters
    ----------
    path : str or Path
        The YAML file.
    base_key : str
        Top-level key that lists the base files (removed from the result).

    Returns
    -------
    dict[str, Any]
        The composed config.

    Raises
    ------
    FileNotFoundError
        If the config or one of its bases does not exist (naming the file).
    ValueError
        If the file is not a YAML mapping or the bases form a cycle.
    """
    return _load_config(Path(path), base_key, ())


def _load_config(path: Path, base_key: str, chain: tuple[Path, ...]) -> dict[str, Any]:
    path = path.expanduser().resolve()
    if path in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path))
        raise ValueError(f"Config bases form a cycle: {cycle}")
    if not path.is_file():
        where = f" (listed as a base in {chain[-1]})" if chain else ""
        raise FileNotFoundError(f"Config file not found: {path}{where}")
    with path.open() as f:
        data = yaml.safe_load(f)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"Config {path} must be a YAML mapping, got {type(data).__name__}")
    bases = data.pop(base_key, None) or []
    if isinstance(bases, str | Path):
        bases = [bases]
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = Path(base).expanduser()
        if not base_path.is_absolute():
            base_path = path.parent / base_path
        merged = merge_configs(merged, _load_config(base_path, base_key, (*chain, path)))
    return merge_configs(merged, data)


def _format_cell(value: Any, float_format: str) -> str:
    if isinstance(value, float):
        return format(value, float_format)
    return str(value).replace("|", "\\|").replace("\n", " ")


def format_markdown_table(
    data: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    title: str | None = None,
    headers: Sequence[str] | None = None,
    float_format: str = ".4g",
) -> str:
    """Render metrics as a GitHub-flavoured Markdown table.

    Parameters
    ----------
    data : Mapping or sequence of mappings
        Either one mapping (rendered as a two-column ``metric | value`` table) or
        a list of row mappings (columns are the union of their keys, in order seen).
    title : str, optional
        A ``## title`` line put above the table.
    headers : sequence of str, optional
        Column names; default ``("metric", "value")`` for a mapping, or the row keys.
    float_format : str
        Format spec applied to float cells.

    Returns
    -------
    str
        The Markdown text, ending with a newline.
    """
    if isinstance(data, Mapping):
        cols = list(headers) if headers is not None else ["metric", "value"]
        if len(cols) != 2:
            raise ValueError(f"A mapping renders as two columns; got headers {cols}")
        rows = [
            [_format_cell(k, float_format), _format_cell(v, float_format)] for k, v in data.items()
        ]
    else:
        if headers is not None:
            cols = list(headers)
        else:
            cols = []
            for row in data:
                cols.extend(k for k in row if k not in cols)
        rows = [[_format_cell(row.get(c, ""), float_format) for c in cols] for row in data]
    lines = []
    if title:
        lines += [f"## {title}", ""]
    lines.append("| " + " | ".join(str(c) for c in cols) + " |")
    lines.append("|" + "|".join(" --- " for _ in cols) + "|")
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
