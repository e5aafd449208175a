"""The report: ``python -m reproduce report`` writes ``results/report.html``, ``results/report.md`` and
``results/report.json``.

The report sets the series of the latest finished run of every spec (its runs under every seed stored;
optionally of one profile) beside the figures the B.Tech report prints in chapter 4, read top to bottom as:

1. the rule: how a published figure is judged against the spread of the runs (``analysis.seeds``);
2. where the figures come from: real C-NMC or the built-in synthetic cells, profile, seeds, device and
   precision, library versions, git commit, dates and the time the runs took; a picture of one training cell
   under each augmentation set (``store.augmentation``);
3. a summary: the count of each verdict, the figures not reproduced (worst first), and every published
   figure beside the runs' mean, sd, range and prediction interval, with the verdict and whether the mean lies
   within the spec's stated tolerance (:func:`compare.compare`);
4. one section per spec in the report's order: the learning-rate finder (Figs 4.1, 4.3, 4.5, 4.6), each
   printed table epoch by epoch against the runs' mean ± sd (Tables 4.1-4.4, 4.6-4.14;
   :func:`compare.table_rows`) with plots and the confusion matrices the audit reconstructs, the Bayesian
   search (Fig 4.12), the k-fold variants side by side (Tables 4.9-4.13) and the ensembles (section 4.2.1);
5. the audit's findings (:func:`audit.audit`).

``report.json`` holds the summary's comparison, machine-readable: one record per published figure
(``compare.Comparison.to_json``) under a schema version.

This module gathers plain numbers and draws the figures; the templates in ``report_templates/`` do all the
formatting. ``report.html`` is one self-contained file (CSS inline, images as base64 PNG data URIs);
``report.md`` keeps its images in ``report_files/`` beside it. No torch: the report renders on any machine
that holds the run folders.
"""

from __future__ import annotations

from pathlib import Path

from cnmc_repro.analysis.audit import audit
from cnmc_repro.atomic import write_json_atomic, write_text_atomic
from cnmc_repro.report.format import environment
from cnmc_repro.report.plots import IMAGES_DIR, Figures
from cnmc_repro.report.runs import collect_runs
from cnmc_repro.report.views import build_context
from cnmc_repro.spec.load import load_all
from cnmc_repro.store.augmentation import read_draws

REPORT_JSON = "report.json"


def render_report(results_dir: Path, out_dir: Path | None = None, profile: str | None = None) -> tuple[Path, Path]:
    """Render ``report.html``, ``report.md`` (with ``report_files/*.png``) and ``report.json`` from the runs
    in ``results_dir``.

    The series of the latest finished run of each spec is used (only runs of ``profile`` when given); a spec
    without one shows as "not run", and an empty or missing ``results_dir`` still gives a report. Returns the
    paths of the HTML and the Markdown file; all three are written into ``out_dir`` (default: ``results_dir``).
    """
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    specs = load_all()
    runs = collect_runs(results_dir, specs, profile)
    figures = Figures()
    context = build_context(specs, runs, audit(specs), figures, profile, read_draws(results_dir))
    env = environment()
    html = env.get_template("report.html.j2").render(**context, image=figures.data_uri)
    markdown = env.get_template("report.md.j2").render(**context, image=figures.relative_path)
    figures.write(out_dir / IMAGES_DIR)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    write_json_atomic(out_dir / REPORT_JSON, context["json"])
    write_text_atomic(html_path, html)
    write_text_atomic(md_path, markdown)
    return html_path, md_path
