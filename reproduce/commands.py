"""What each command of ``python -m reproduce`` does: reads its arguments, calls the library, prints, returns
the exit code. ``cli`` parses the arguments and turns errors into one sentence."""

from __future__ import annotations

import argparse
import errno
from pathlib import Path

from cnmc_repro.errors import UserError


def data_check(args: argparse.Namespace) -> int:
    from cnmc_repro.data.check import (
        compare_checksums,
        format_check,
        format_unreadable,
        published_dataset,
        read_checksums,
        unreadable_images,
    )
    from cnmc_repro.data.source import open_dataset

    published = published_dataset()
    checksums = read_checksums(args.checksums) if args.checksums else None
    ds = open_dataset(args.data)
    report = compare_checksums(ds, checksums) if checksums is not None else None
    print(format_check(ds, published, report))
    bad = unreadable_images(list(ds.cells), full_decode=args.decode)
    print("\n" + format_unreadable(ds, bad, args.decode))
    if args.prepare and bad and not args.skip_bad:
        print(f"not prepared at {args.prepare}px: --skip-bad prepares the other cells")
    elif args.prepare:
        from cnmc_repro.data.prepare import Preparation, PreparedCache

        prepared = PreparedCache().load(list(ds.cells), Preparation(size=args.prepare), skip_bad=args.skip_bad)
        print(
            f"\nprepared {len(prepared.cells)} cells at {args.prepare}px "
            f"({prepared.decoded} decoded, {len(prepared.cells) - prepared.decoded} from the cache)"
        )
        if prepared.skipped:
            print(f"left out {len(prepared.skipped)} unreadable cell(s):")
            for cell, why in prepared.skipped:
                print(f"  {cell.path}: {why}")
    return 1 if bad else 0


def data_synth(args: argparse.Namespace) -> int:
    from cnmc_repro.data.synthetic import LAYOUTS, synthesize

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"output folder {out} is not empty; choose a new folder")
    synthesize(out, args.seed, LAYOUTS[args.size])
    print(f"wrote the SYNTHETIC built-in data set ({args.size}, seed {args.seed}) to {out}: not real C-NMC cells")
    return 0


def _options(args: argparse.Namespace):
    from cnmc_repro.run.engine import Options, parse_seeds

    seeds = getattr(args, "seeds", None)
    kwargs = dict(
        data=getattr(args, "data", None),
        profile=getattr(args, "profile", None),
        device=getattr(args, "device", "auto"),
        precision=getattr(args, "precision", None),
        seeds=parse_seeds(seeds) if seeds else (getattr(args, "seed", None) or 0,),
        force=getattr(args, "force", False),
        pretrained=not getattr(args, "no_pretrained", False),
        deterministic=getattr(args, "deterministic", False),
        skip_bad=getattr(args, "skip_bad", False),
        executor=getattr(args, "executor", "local"),
        address=getattr(args, "address", None),
        threads=getattr(args, "threads", None),
    )
    if getattr(args, "results", None):
        kwargs["results"] = Path(args.results)
    return Options(**kwargs)


def run(args: argparse.Namespace) -> int:
    from cnmc_repro.run.engine import run as run_specs

    ids = args.ids if args.command == "run" else None
    options = _options(args)
    outcomes = run_specs(ids, options)
    if args.command == "all":
        from cnmc_repro.store.folders import report_is_current

        if any(o.ran for o in outcomes) or not report_is_current(Path(options.results)):
            from cnmc_repro.report.render import render_report

            html, md = render_report(Path(options.results))
            print(f"report: {html} and {md}")
        else:
            report = Path(options.results) / "report.html"
            print(f"report up to date: {report} (python -m reproduce report renders it again)")
    ran = [o for o in outcomes if o.ran]
    print(
        f"{len(ran)} run(s) trained, {len(outcomes) - len(ran)} already up to date; results in "
        f"{outcomes[0].run_dir.parent if outcomes else args.results}"
    )
    if not ran:
        print(
            "nothing to do: every spec has a finished run with the same spec, profile, seed, data and code "
            "(--force reruns)"
        )
    return 0


def report(args: argparse.Namespace) -> int:
    from cnmc_repro.report.render import render_report

    html, md = render_report(_options(args).results, Path(args.out) if args.out else None, profile=args.profile)
    print(f"report: {html} and {md}")
    return 0


def list_runs(args: argparse.Namespace) -> int:
    from cnmc_repro.report.terminal import list_text

    print(list_text(_options(args).results), end="")
    return 0


def show(args: argparse.Namespace) -> int:
    from cnmc_repro.report.terminal import show_text

    print(show_text(args.id, _options(args).results, profile=args.profile), end="")
    return 0


def audit(args: argparse.Namespace) -> int:
    import json

    from cnmc_repro.analysis.audit import audit, format_audit
    from cnmc_repro.spec.load import load_all

    doc = audit(load_all())
    print(json.dumps(doc, indent=2) if args.json else format_audit(doc))
    return 0


def regression(args: argparse.Namespace) -> int:
    from cnmc_repro.analysis import regression

    results = _options(args).results
    if args.update:
        path = regression.update(results)
        print(f"wrote the regression baseline {path}; commit it with a message that says why the figures moved")
        return 0
    if args.against:
        diffs = regression.against(results, Path(args.against))
        _print_list(f"{len(diffs)} figure(s) differ between {results} and {args.against}:", diffs)
        if not diffs:
            print(f"every figure of {results} equals those of {args.against}")
        return 1 if diffs else 0
    c = regression.check(results)
    print(f"compared seed 0's smoke runs of {len(c.specs)} spec(s) with {regression.BASELINE}")
    _print_list(f"{len(c.outside_bands)} figure(s) outside the baseline's seed bands:", c.outside_bands)
    _print_list(f"{len(c.structure)} difference(s) in what does not depend on floating point:", c.structure)
    _print_list(f"{len(c.unhealthy)} spec(s) did not learn:", c.unhealthy)
    _print_list(
        f"{len(c.unreliable)} spec(s) below the floor, as a seed of the baseline was (the smoke profile does not make "
        "them learn reliably):",
        c.unreliable,
    )
    if args.exact:
        _print_list(f"{len(c.exact)} figure(s) differ from the baseline's in some bit:", c.exact)
    elif c.exact:
        print(
            f"{len(c.exact)} figure(s) differ from the baseline's in some bit: expected on another processor "
            "(--exact lists them, and fails on them, for a rerun on the baseline's machine)"
        )
    failed = c.failures + (c.exact if args.exact else [])
    if failed:
        print(f"regression: FAILED ({len(failed)}); if the change is intended: {regression.UPDATE}, and commit it")
        return 1
    judged = "every trained spec learned" if not c.unreliable else f"{len(c.unreliable)} spec(s) not judged on learning"
    print(f"regression: passed (within the seed bands, the same structure, {judged})")
    return 0


def weights(args: argparse.Namespace) -> int:
    from cnmc_repro.run.models import ARCHS, format_weights
    from cnmc_repro.spec.load import load_all

    uses: dict[str, list[str]] = {}
    for spec in load_all().values():
        if spec.recipe is not None:
            uses.setdefault(spec.recipe.arch, []).append(spec.id)
    if args.all:
        uses |= {arch: uses.get(arch, []) for arch in ARCHS}
    print(format_weights(uses))
    return 0


def _print_list(title: str, items: list[str], most: int = 50) -> None:
    if not items:
        return
    print(title)
    for item in items[:most]:
        print(f"  {item}")
    if len(items) > most:
        print(f"  ... and {len(items) - most} more")


def file_system_error(e: OSError) -> str:
    """One sentence for an error of the file system, naming the file and the way out."""
    where = f" {e.filename}" if e.filename else ""
    fix = {
        errno.ENOSPC: "the disk is full; free some space (or choose another folder with --results or "
        "CNMC_REPRO_CACHE) and run the same command again: what finished is kept",
        errno.EDQUOT: "the disk quota is used up; free some space and run the same command again",
        errno.EROFS: "the folder is on a read-only file system; choose a writable one with --results or "
        "CNMC_REPRO_CACHE",
        errno.EACCES: "this user may not write there; choose another folder with --results or CNMC_REPRO_CACHE",
        errno.EPERM: "this user may not write there; choose another folder with --results or CNMC_REPRO_CACHE",
    }.get(e.errno, "check the path and run the same command again")
    return f"cannot use{where}: {e.strerror or e}; {fix}"
