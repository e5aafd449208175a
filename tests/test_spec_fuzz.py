"""Every spec of ``benchmarks/`` broken in the ways a hand edit breaks it, at every level of its nesting: each key
dropped, renamed and given a value of another type, each list item retyped, and the numbers set out of range
(negative epochs, a rate of 0, an image of 0 px, a batch of 0, dropout above 1, an unknown architecture or kind).

Each broken spec is what a command loads first (``reproduce list``, ``run`` and ``audit`` all start with
``load_all``): it must either load, or stop with one sentence that names the file and the key, raised as the
``UserError`` the command line prints without a traceback; out-of-range values must stop. The whole sweep runs
``load_all`` on a folder holding the broken spec (and, for an ensemble, its members), with the YAML parser
handing over the broken data directly (parsing is not what is tried here, and writing and parsing some 3,000
files would take a minute); the first mutation of each kind of each spec, and every broken spec that loads,
are written as YAML and go through ``python -m reproduce list`` itself. The number of mutations tried is printed.
"""

from __future__ import annotations

import copy
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnmc_repro.errors import UserError
from cnmc_repro.spec.load import load_all, spec_files
from cnmc_repro.spec.schema import min_size

SPECS = spec_files()

# values out of range, by the key they are given to wherever it occurs
OUT_OF_RANGE: dict[str, list[Any]] = {
    "epochs": [-1, 0],
    "probe_epochs": [0],
    "lr": [0, -0.001, 5.0, [1.0e-4, 1.0e-6]],
    "size": [0, -8],  # and one pixel below the smallest image the spec's architecture runs on
    "bs": [0, 1],
    "dropout": [1.5, 1.0, -0.1],
    "wd": [-0.01],
    "valid_size": [0, -5, 1.5, 0.0],
    "arch": ["lenet"],
    "kind": ["classification"],
    "beta": [0],
    "folds": [1, 0],
    "trained_folds": [0, 99],
    "random_state": [-1],
    "init_points": [-1],
    "n_iter": [-1],
    "max_rotate": [-5, 400],
    "p_rotate": [2.0],
    "crop_threshold": [255, -1],
    "accuracy": [-0.1, 2.0],
    "f_beta": [-0.1],
    "test_accuracy": [-0.1, "most"],
    "page": [0],
    "pages": [[0]],
    "fold": [-1, 9],
    "index": [-1],
    "low": [1.0e3],  # above its high
    "bayesian_best": [99],
}


@dataclass
class Mutation:
    kind: str  # drop, rename, retype, range
    key: str  # the key as the loader names it: recipe.stages[0].epochs
    tree: Any


class Item(int):
    """The index of a list item in a path (a mapping's key may be a number too)."""


def _key(path: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, Item) else (f".{p}" if i else str(p)) for i, p in enumerate(path))


def _other_type(value: Any) -> Any:
    if isinstance(value, dict | list) or isinstance(value, bool):
        return "some text"
    if isinstance(value, str):
        return 12345
    return "some text"  # numbers and empty values


def _nodes(tree: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, value) of every dict entry and list item, depth first."""
    if isinstance(tree, dict):
        items = tree.items()
    else:
        items = ((Item(i), v) for i, v in enumerate(tree)) if isinstance(tree, list) else ()
    for k, v in items:
        yield (*path, k), v
        yield from _nodes(v, (*path, k))


def _edit(tree: Any, path: tuple, edit) -> Any:
    """A copy of ``tree`` with ``edit(parent, key)`` applied at ``path``; what the edit does not touch is shared."""
    out = parent = copy.copy(tree)
    for p in path[:-1]:
        parent[p] = copy.copy(parent[p])
        parent = parent[p]
    edit(parent, path[-1])
    return out


def mutations(tree: dict) -> Iterator[Mutation]:
    arch = (tree.get("recipe") or {}).get("arch")
    too_small = [min_size(arch) - 1] if arch and min_size(arch) > 1 else []  # below what the architecture runs on
    for path, value in _nodes(tree):
        key = _key(path)
        if not isinstance(path[-1], Item):  # a key of a mapping
            yield Mutation("drop", key, _edit(tree, path, lambda d, k: d.pop(k)))
            new = f"{path[-1]}_renamed"
            renamed = _edit(tree, path, lambda d, k, n=new: d.__setitem__(n, d.pop(k)))
            yield Mutation("rename", _key((*path[:-1], new)), renamed)
        other = _other_type(value)
        yield Mutation("retype", key, _edit(tree, path, lambda d, k, v=other: d.__setitem__(k, v)))
        bad_values = OUT_OF_RANGE.get(path[-1], []) if isinstance(path[-1], str) else []
        for bad in bad_values + (too_small if path[-1] == "size" else []):
            if bad != value:
                yield Mutation("range", key, _edit(tree, path, lambda d, k, v=bad: d.__setitem__(k, v)))


def _named_key(message: str, file: Path) -> str:
    """The key a loader message names: right after the file, or quoted."""
    rest = message.removeprefix(f"{file}: ")
    quoted = re.search(r"key '([^']+)'", rest)
    return quoted.group(1) if quoted else rest.split(" ", 1)[0]


def _keys(tree: Any) -> set[str]:
    return {_key(path) for path, _ in _nodes(tree)}


def _folder(tmp: Path, spec: Path) -> Path:
    """A specs folder for ``spec``: section 3.1's counts and, for an ensemble, its members."""
    folder = tmp / spec.stem
    folder.mkdir()
    shutil.copy(spec, folder)
    shutil.copy(spec.parent / "dataset.yaml", folder)
    text = spec.read_text()
    for other in SPECS:
        if other != spec and re.search(rf"\b{other.stem}\b", text) and "ensemble:" in text:
            shutil.copy(other, folder)
    return folder


def test_every_broken_spec_loads_or_stops_with_one_sentence_naming_the_file_and_the_key(
    tmp_path, monkeypatch, cli, capsys
):
    import cnmc_repro.spec.load as load

    tried: Counter = Counter()
    loaded: Counter = Counter()
    through_cli: set[tuple[str, str]] = set()
    trees = {p.name: yaml.load(p.read_text(), Loader=yaml.CSafeLoader) for p in SPECS}
    for spec in SPECS:
        folder = _folder(tmp_path, spec)
        path = folder / spec.name
        monkeypatch.setenv("CNMC_REPRO_SPECS", str(folder))
        for m in mutations(trees[spec.name]):
            tried[m.kind] += 1
            with monkeypatch.context() as patched:
                given = trees | {spec.name: m.tree}
                patched.setattr(load, "load_yaml", lambda p, given=given: given[Path(p).name])
                try:
                    load_all(folder)
                    accepted = True
                except UserError as e:
                    accepted = False
                    message = str(e)
                    assert "\n" not in message and message.startswith(f"{path}: "), (m.kind, m.key, message)
                    named = _named_key(message, path)
                    assert named == m.key or named in _keys(m.tree) | _keys(trees[spec.name]), (m.kind, m.key, message)
            if accepted:
                assert m.kind in ("drop", "retype"), f"{spec.name}: {m.kind} of {m.key} was accepted"
                loaded[m.kind] += 1
            if accepted or (spec.stem, m.kind) not in through_cli:  # the command line, from a YAML file
                through_cli.add((spec.stem, m.kind))
                path.write_text(yaml.dump(m.tree, Dumper=yaml.CSafeDumper, sort_keys=False))
                code, _, err = cli("list", "--results", tmp_path / "results")
                if accepted:
                    assert code == 0 and not err, err
                else:
                    assert code == 2 and err == f"error: {message}\n", err
        path.write_text(spec.read_text())
    with capsys.disabled():
        print(
            f"\n{sum(tried.values())} broken specs tried ({', '.join(f'{n} {k}' for k, n in tried.items())}) over "
            f"{len(SPECS)} specs; {sum(loaded.values())} loaded (an optional key dropped or a value its type "
            f"allows); {sum(loaded.values()) + len(through_cli)} went through `reproduce list`"
        )
    assert sum(tried.values()) > 1000 and tried["range"] > 50


@pytest.mark.parametrize("spec", SPECS[:1], ids=lambda p: p.stem)
def test_the_mutations_reach_every_level(spec):
    """Sanity of the generator: keys at the top, in the recipe, in its stage list and in the published tables."""
    tree = yaml.load(spec.read_text(), Loader=yaml.CSafeLoader)
    keys = {m.key for m in mutations(tree)}
    assert {"id", "recipe.bs", "recipe.stages[0].epochs", "recipe.stages[1]"} <= keys
    assert any(k.startswith("published.tables.") and k.endswith(".rows[0]") for k in keys)
