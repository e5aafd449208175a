"""``python -m reproduce``: parses arguments and calls the library; errors become one sentence and an exit code."""

from __future__ import annotations

import argparse
import errno
import sys
import warnings
from pathlib import Path

from cnmc_repro.errors import UserError


def _data_check(args: argparse.Namespace) -> int:
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


def _data_synth(args: argparse.Namespace) -> int:
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


def _run(args: argparse.Namespace) -> int:
    from cnmc_repro.run.engine import run

    ids = args.ids if args.command == "run" else None
    options = _options(args)
    outcomes = run(ids, options)
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


def _report(args: argparse.Namespace) -> int:
    from cnmc_repro.report.render import render_report

    html, md = render_report(_options(args).results, Path(args.out) if args.out else None, profile=args.profile)
    print(f"report: {html} and {md}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from cnmc_repro.report.terminal import list_text

    print(list_text(_options(args).results), end="")
    return 0


def _show(args: argparse.Namespace) -> int:
    from cnmc_repro.report.terminal import show_text

    print(show_text(args.id, _options(args).results, profile=args.profile), end="")
    return 0


def _audit(args: argparse.Namespace) -> int:
    import json

    from cnmc_repro.analysis.audit import audit, format_audit
    from cnmc_repro.spec.load import load_all

    doc = audit(load_all())
    print(json.dumps(doc, indent=2) if args.json else format_audit(doc))
    return 0


def _regression(args: argparse.Namespace) -> int:
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
    print("regression: passed (within the seed bands, the same structure, every trained spec learned)")
    return 0


def _weights(args: argparse.Namespace) -> int:
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


EXAMPLES_DATA_CHECK = """examples:
  python -m reproduce data check                         # the built-in synthetic data
  python -m reproduce data check --data ~/C-NMC_Leukemia
  python -m reproduce data check --data ~/C-NMC_Leukemia --checksums cnmc_checksums.tsv
  python -m reproduce data check --data ~/C-NMC_Leukemia --decode   # decode every image, not only check it
  python -m reproduce data check --data ~/C-NMC_Leukemia --prepare 224 --skip-bad
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reproduce",
        description="Reproduce 'Leukemia Classification of Microscopic Images Using Deep Learning Techniques' "
        "(IIT Indore, 2019) on C-NMC 2019.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  python -m reproduce data check\n  python -m reproduce data synth --out /tmp/cells\n",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    data = sub.add_parser("data", help="check, prepare or generate data")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="data-command")

    check = data_sub.add_parser(
        "check",
        help="count cells and subjects, compare with the published counts, find duplicates and unreadable images "
        "(exit 1 when there are any)",
        epilog=EXAMPLES_DATA_CHECK,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--data", metavar="PATH", help="folder holding training_data/ (default: built-in synthetic)")
    check.add_argument("--checksums", metavar="FILE", help="sha256<TAB>bytes<TAB>path list to compare files with")
    check.add_argument("--prepare", metavar="SIZE", type=int, help="also prepare every cell at SIZE px and cache it")
    check.add_argument(
        "--decode", action="store_true", help="decode every image (slower) instead of checking each file's structure"
    )
    check.add_argument("--skip-bad", action="store_true", help="with --prepare: prepare the readable cells")
    check.set_defaults(func=_data_check)

    synth = data_sub.add_parser(
        "synth",
        help="write the built-in synthetic data set in the C-NMC layout",
        epilog="examples:\n  python -m reproduce data synth --out /tmp/cells\n"
        "  python -m reproduce data synth --out /tmp/full --size full   # 10,661 training cells\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    synth.add_argument("--out", required=True, metavar="DIR", help="folder to write (new or empty)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--size", choices=("small", "full"), default="small", help="small (default) or full counts")
    synth.set_defaults(func=_data_synth)
    results_option = argparse.ArgumentParser(add_help=False)
    results_option.add_argument("--results", metavar="DIR", help="where runs are stored (default: results/)")
    run_options = argparse.ArgumentParser(add_help=False, parents=[results_option])
    run_options.add_argument("--data", metavar="PATH", help="C-NMC folder holding training_data/ (default: built-in)")
    run_options.add_argument(
        "--profile",
        choices=("full", "smoke", "timing"),
        help="full: the recipe as published (default with --data); smoke: small and fast "
        "(default on the built-in data); timing: the published sizes, one epoch per stage",
    )
    run_options.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    run_options.add_argument(
        "--precision",
        choices=("bf16", "fp32"),
        help="bf16 autocast (the default on a GPU, for speed) or fp32 (the default on a CPU; the report's)",
    )
    seed_options = run_options.add_mutually_exclusive_group()
    seed_options.add_argument("--seed", type=int, metavar="N", help="the run seed (default 0)")
    seed_options.add_argument(
        "--seeds",
        metavar="N|LIST",
        help="one run per seed: a count (5: seeds 0 to 4) or a list (0,3,7); the report sets every published "
        "figure against their spread",
    )
    run_options.add_argument(
        "--force",
        action="store_true",
        help="rerun even when a finished run is up to date, and start interrupted runs afresh",
    )
    run_options.add_argument("--no-pretrained", action="store_true", help="train from random weights")
    run_options.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic GPU kernels (slower; the CPU is deterministic anyway)",
    )
    run_options.add_argument("--skip-bad", action="store_true", help="leave unreadable images out")
    run_options.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local (default): the runs one after another here; ray: one Ray task per run, each on a GPU of "
        "this machine or of a Ray cluster (pip install -e '.[ray]')",
    )
    run_options.add_argument(
        "--address",
        metavar="ADDR",
        help="with --executor ray: the Ray cluster's address (host:6379, or auto for the one started on this "
        "machine with ray start --head); without it Ray starts here",
    )
    run_options.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads of each CPU run (default: torch's, the machine's cores); with --executor ray each "
        "CPU run asks for N CPUs, so a machine trains cores/N runs at once. The figures depend on N",
    )

    p_all = sub.add_parser(
        "all",
        parents=[run_options],
        help="run every spec (finished runs are kept, not redone)",
        epilog="examples:\n  python -m reproduce all                      # built-in data, smoke profile\n"
        "  python -m reproduce all --seeds 5            # seeds 0 to 4: every figure against their spread\n"
        "  python -m reproduce all --data ~/C-NMC_Leukemia --device cuda\n"
        "  python -m reproduce all --data ~/C-NMC_Leukemia --device cuda --precision fp32   # as the report ran\n"
        "  python -m reproduce all --seeds 5 --executor ray   # each run a Ray task on a free GPU of this machine\n"
        "  python -m reproduce all --data /shared/C-NMC --results /shared/results --executor ray --address auto\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_all.set_defaults(func=_run)
    p_run = sub.add_parser(
        "run",
        parents=[run_options],
        help="run the named specs or tables",
        epilog="examples:\n  python -m reproduce run alexnet\n  python -m reproduce run alexnet --seeds 3\n"
        "  python -m reproduce run 4.7 --force\n"
        "  python -m reproduce run kfold --data ~/C-NMC_Leukemia --profile full\n"
        "  python -m reproduce run alexnet squeezenet --seeds 4 --executor ray --address head-node:6379\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_run.add_argument("ids", nargs="+", metavar="ID", help="spec id (see list) or table number such as 4.7")
    p_run.set_defaults(func=_run)

    p_list = sub.add_parser(
        "list",
        parents=[results_option],
        help="every spec, what it reproduces, and whether it has run",
        epilog="examples:\n  python -m reproduce list\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_list.set_defaults(func=_list)

    p_show = sub.add_parser(
        "show",
        parents=[results_option],
        help="a spec's per-epoch figures beside the published ones",
        epilog="examples:\n  python -m reproduce show alexnet\n  python -m reproduce show 4.14\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_show.add_argument("id", metavar="ID", help="spec id or table number")
    p_show.add_argument(
        "--profile", choices=("full", "smoke", "timing"), help="which profile's latest run (default: any)"
    )
    p_show.set_defaults(func=_show)
    p_report = sub.add_parser(
        "report",
        parents=[results_option],
        help="render results/report.html and results/report.md from the finished runs",
        epilog="examples:\n  python -m reproduce report\n  python -m reproduce report --profile full --out /tmp/r\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_report.add_argument("--profile", choices=("full", "smoke", "timing"), help="only runs of this profile")
    p_report.add_argument("--out", metavar="DIR", help="where to write the report (default: the results folder)")
    p_report.set_defaults(func=_report)

    p_audit = sub.add_parser(
        "audit",
        help="infer validation sizes, F-beta, confusion matrices and the Bayesian set-up from the "
        "published figures, and check the specs against them",
        epilog="examples:\n  python -m reproduce audit\n  python -m reproduce audit --json > audit.json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_audit.add_argument("--json", action="store_true", help="print the findings as one JSON document")
    p_audit.set_defaults(func=_audit)

    p_weights = sub.add_parser(
        "weights",
        help="which ImageNet weights files the specs need, and whether each is in torchvision's cache",
        epilog="examples:\n  python -m reproduce weights\n  python -m reproduce weights --all\n"
        "  TORCH_HOME=/data/torch python -m reproduce weights   # a cache in /data/torch/hub/checkpoints\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_weights.add_argument("--all", action="store_true", help="every architecture the specs may name, not only theirs")
    p_weights.set_defaults(func=_weights)

    p_reg = sub.add_parser(
        "regression",
        parents=[results_option],
        help="compare the latest smoke runs with the committed baseline of the suite's own figures",
        epilog="examples:\n  python -m reproduce all --no-pretrained && python -m reproduce regression\n"
        "  python -m reproduce regression --against /tmp/before   # every figure, exactly, on one machine\n"
        "  python -m reproduce all --no-pretrained --seeds 5 && python -m reproduce regression --update\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_reg.add_argument(
        "--update", action="store_true", help="write the baseline from the latest smoke runs (run them with --seeds 5)"
    )
    p_reg.add_argument("--exact", action="store_true", help="also fail on any figure that differs in any bit")
    p_reg.add_argument("--against", metavar="DIR", help="compare every figure exactly with another results folder")
    p_reg.set_defaults(func=_regression)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit notices from torchvision's import
    warnings.filterwarnings("ignore", category=UserWarning, module="fastai")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: what finished is kept; run the same command again to continue", file=sys.stderr)
        return 130
    except OSError as e:  # the file system refused: a full disk, a read-only or unwritable folder, ...
        print(f"error: {file_system_error(e)}", file=sys.stderr)
        return 2


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
