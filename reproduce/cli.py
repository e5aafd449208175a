"""``python -m reproduce``: parses arguments and calls the library; errors become one sentence and an exit code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnmc_repro.errors import UserError


def _data_check(args: argparse.Namespace) -> int:
    from cnmc_repro.datacheck import compare_checksums, format_check, published_dataset, read_checksums
    from cnmc_repro.source import open_dataset

    published = published_dataset()
    checksums = read_checksums(args.checksums) if args.checksums else None
    ds = open_dataset(args.data)
    report = compare_checksums(ds, checksums) if checksums is not None else None
    print(format_check(ds, published, report))
    if args.prepare:
        from cnmc_repro.prepare import Preparation, PreparedCache

        prepared = PreparedCache().load(list(ds.cells), Preparation(size=args.prepare), skip_bad=args.skip_bad)
        print(
            f"\nprepared {len(prepared.cells)} cells at {args.prepare}px "
            f"({prepared.decoded} decoded, {len(prepared.cells) - prepared.decoded} from the cache)"
        )
        if prepared.skipped:
            print(f"left out {len(prepared.skipped)} unreadable cell(s):")
            for cell, why in prepared.skipped:
                print(f"  {cell.path}: {why}")
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from cnmc_repro.synthetic import LAYOUTS, synthesize

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"output folder {out} is not empty; choose a new folder")
    synthesize(out, args.seed, LAYOUTS[args.size])
    print(f"wrote the SYNTHETIC built-in data set ({args.size}, seed {args.seed}) to {out}: not real C-NMC cells")
    return 0


EXAMPLES_DATA_CHECK = """examples:
  python -m reproduce data check                         # the built-in synthetic data
  python -m reproduce data check --data ~/C-NMC_Leukemia
  python -m reproduce data check --data ~/C-NMC_Leukemia --checksums cnmc_checksums.tsv
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
        help="count cells and subjects, compare with the published counts, find duplicates",
        epilog=EXAMPLES_DATA_CHECK,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--data", metavar="PATH", help="folder holding training_data/ (default: built-in synthetic)")
    check.add_argument("--checksums", metavar="FILE", help="sha256<TAB>bytes<TAB>path list to compare files with")
    check.add_argument("--prepare", metavar="SIZE", type=int, help="also prepare every cell at SIZE px and cache it")
    check.add_argument("--skip-bad", action="store_true", help="leave unreadable images out instead of stopping")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: what finished is kept; run the same command again to continue", file=sys.stderr)
        return 130
