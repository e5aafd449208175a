"""The report: ``python -m reproduce report`` writes ``results/report.html`` and ``results/report.md``.

The report sets the latest finished run of every spec (optionally of one profile) beside the figures the
B.Tech report prints in chapter 4, read top to bottom as:

1. where the figures come from: real C-NMC or the built-in synthetic cells, profile, seed, device, library
   versions, git commit, dates and the time the runs took;
2. a summary: every published result beside the reproduced one with the difference and the verdict
   (:func:`compare.summary_rows`);
3. one section per spec in the report's order: the learning-rate finder (Figs 4.1, 4.3, 4.5, 4.6), each
   printed table epoch by epoch (Tables 4.1-4.4, 4.6-4.14; :func:`compare.table_rows`) with plots and the
   confusion matrices the audit reconstructs, the Bayesian search (Fig 4.12), the k-fold variants side by
   side (Tables 4.9-4.13) and the ensembles (section 4.2.1);
4. the audit's findings (:func:`audit.audit`).

This module gathers plain numbers and draws the figures; the templates in ``report_templates/`` do all the
formatting. ``report.html`` is one self-contained file (CSS inline, images as base64 PNG data URIs);
``report.md`` keeps its images in ``report_files/`` beside it. No torch: the report renders on any machine
that holds the run folders.
"""

from __future__ import annotations

from pathlib import Path

from cnmc_repro.analysis.audit import audit
from cnmc_repro.atomic import write_text_atomic
from cnmc_repro.report.format import environment
from cnmc_repro.report.plots import IMAGES_DIR, Figures
from cnmc_repro.report.runs import collect_runs
from cnmc_repro.report.views import build_context
from cnmc_repro.spec.load import load_all


def render_report(results_dir: Path, out_dir: Path | None = None, profile: str | None = None) -> tuple[Path, Path]:
    """Render ``report.html`` and ``report.md`` (with ``report_files/*.png``) from the runs in ``results_dir``.

    The latest finished run of each spec is used (only runs of ``profile`` when given); a spec without one
    shows as "not run", and an empty or missing ``results_dir`` still gives a report. Returns the paths of
    the HTML and the Markdown file, both written into ``out_dir`` (default: ``results_dir``).
    """
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    specs = load_all()
    runs = collect_runs(results_dir, specs, profile)
    figures = Figures()
    context = build_context(specs, runs, audit(specs), figures, profile)
    env = environment()
    html = env.get_template("report.html.j2").render(**context, image=figures.data_uri)
    markdown = env.get_template("report.md.j2").render(**context, image=figures.relative_path)
    figures.write(out_dir / IMAGES_DIR)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    write_text_atomic(html_path, html)
    write_text_atomic(md_path, markdown)
    return html_path, md_path
