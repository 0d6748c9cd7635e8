"""Fold benchmark: how long folding 10,000 host names takes, plain and for an inventory.

Run on demand (never in the test suite):

    .venv/bin/python bench/fold.py
    git show REV:src/herd/core/hostset.py > /tmp/old_hostset.py
    .venv/bin/python bench/fold.py --against /tmp/old_hostset.py   # an older fold beside it

Every summary, ``-b`` header and ``herd groups`` line folds a host set, and
with an inventory each bracketed term is checked against the pattern engine
(``fold_reader``), so this times ``fold`` alone, with the reader of an
inventory that has a group named like the hosts' prefix (the case that
rewrites terms), and with the reader for no inventory (``herd log``). It
prints the best CPU time of each, interleaved so machine load touches all.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from herd.core.hostset import fold
from herd.inventory import Inventory
from herd.inventory.build import build
from herd.inventory.data import InventoryData, Origin
from herd.inventory.patterns import fold_reader

Fold = Callable[[Iterable[str]], str]


def host_sets() -> tuple[dict[str, list[str]], Inventory]:
    """Four host sets of 10,000 or 5,000 names, and an inventory holding them all."""
    rng = random.Random(1)
    web = [f"web{n:05d}" for n in range(1, 10_001)]
    racks = [f"rack{r:02d}-node{n:03d}" for r in range(1, 41) for n in range(1, 251)]
    sets = {
        "10k web00001..web10000": web,
        "10k rack[01-40]-node[001-250]": racks,
        "5k of web, at random": rng.sample(web, 5000),
        "5k of rack/node, at random": rng.sample(racks, 5000),
    }
    data = InventoryData()
    origin = Origin("<bench>")
    data.add_hosts(web, "web", origin)  # a group named like the prefix: web[...] is a subscript
    data.add_hosts(racks, "racks", origin)
    for rack in range(1, 41):
        data.group(f"rack{rack:02d}-node", origin)
    return sets, build(data)


def load_fold(path: Path) -> Fold:
    spec = importlib.util.spec_from_file_location("other_hostset", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    other: Fold = module.fold
    return other


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="best of N (default 15)")
    parser.add_argument("--against", type=Path, help="another hostset.py whose fold to time")
    args = parser.parse_args()
    sets, inventory = host_sets()
    ways: dict[str, Fold] = {}
    if args.against is not None:
        ways["--against fold"] = load_fold(args.against)
    ways["fold"] = fold
    ways["fold, inventory"] = lambda names: fold(names, fold_reader(inventory))
    ways["fold, no inventory"] = lambda names: fold(names, fold_reader(None))
    best = {(label, way): float("inf") for label in sets for way in ways}
    for _ in range(args.rounds):
        for label, names in sets.items():
            for way, folder in ways.items():
                started = time.process_time()
                folder(names)
                best[label, way] = min(best[label, way], time.process_time() - started)
    print(f"{'':32}" + "".join(f"{way:>22}" for way in ways))
    for label in sets:
        print(f"{label:32}" + "".join(f"{best[label, way] * 1000:19.1f} ms" for way in ways))


if __name__ == "__main__":
    main()
