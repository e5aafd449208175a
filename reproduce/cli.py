"""``python -m reproduce``: parses the arguments and calls ``commands``; errors become one sentence and an exit
code."""

from __future__ import annotations

import argparse
import sys
import warnings

from cnmc_repro.errors import UserError
from reproduce import commands

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
    check.set_defaults(func=commands.data_check)

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
    synth.set_defaults(func=commands.data_synth)
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
    p_all.set_defaults(func=commands.run)
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
    p_run.set_defaults(func=commands.run)

    p_list = sub.add_parser(
        "list",
        parents=[results_option],
        help="every spec, what it reproduces, and whether it has run",
        epilog="examples:\n  python -m reproduce list\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_list.set_defaults(func=commands.list_runs)

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
    p_show.set_defaults(func=commands.show)
    p_report = sub.add_parser(
        "report",
        parents=[results_option],
        help="render results/report.html and results/report.md from the finished runs",
        epilog="examples:\n  python -m reproduce report\n  python -m reproduce report --profile full --out /tmp/r\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_report.add_argument("--profile", choices=("full", "smoke", "timing"), help="only runs of this profile")
    p_report.add_argument("--out", metavar="DIR", help="where to write the report (default: the results folder)")
    p_report.set_defaults(func=commands.report)

    p_audit = sub.add_parser(
        "audit",
        help="infer validation sizes, F-beta, confusion matrices and the Bayesian set-up from the "
        "published figures, and check the specs against them",
        epilog="examples:\n  python -m reproduce audit\n  python -m reproduce audit --json > audit.json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_audit.add_argument("--json", action="store_true", help="print the findings as one JSON document")
    p_audit.set_defaults(func=commands.audit)

    p_weights = sub.add_parser(
        "weights",
        help="which ImageNet weights files the specs need, and whether each is in torchvision's cache",
        epilog="examples:\n  python -m reproduce weights\n  python -m reproduce weights --all\n"
        "  TORCH_HOME=/data/torch python -m reproduce weights   # a cache in /data/torch/hub/checkpoints\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_weights.add_argument("--all", action="store_true", help="every architecture the specs may name, not only theirs")
    p_weights.set_defaults(func=commands.weights)

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
    p_reg.set_defaults(func=commands.regression)
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
        print(f"error: {commands.file_system_error(e)}", file=sys.stderr)
        return 2
