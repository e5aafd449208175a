"""The report (``cnmc_repro.report``): HTML and Markdown rendered from run folders the tests write by hand."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fake_runs import write_alexnet, write_alexnet_seeds, write_all

from cnmc_repro.analysis.audit import audit
from cnmc_repro.analysis.seeds import Verdict, spread
from cnmc_repro.report import format as fmt
from cnmc_repro.report import render as report
from cnmc_repro.report import views
from cnmc_repro.spec.load import load_all
from cnmc_repro.store.record import SCHEMA_VERSION

CHROMIUM = Path("/usr/bin/chromium")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def specs():
    return load_all()


@pytest.fixture(scope="session")
def findings(specs):
    """The real audit, computed once: it takes seconds (the Bayesian search is asked of bayes_opt again)."""
    return audit(specs)


@pytest.fixture(scope="module", autouse=True)
def _cached_audit(findings):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report, "audit", lambda specs: findings)
        yield


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, specs, _cached_audit) -> tuple[Path, str, str]:
    """The results folder of :func:`write_all` (synthetic data) rendered once: (folder, HTML, Markdown)."""
    root = write_all(tmp_path_factory.mktemp("rendered") / "results", specs)
    html_path, md_path = report.render_report(root)
    assert html_path == root / "report.html" and md_path == root / "report.md"
    return root, html_path.read_text(), md_path.read_text()


class Page(HTMLParser):
    """The bits of an HTML page the tests look at: every src/href, and the text of the summary table's cells."""

    def __init__(self, html: str):
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.summary_cells: list[str] = []
        self._depth = 0  # > 0 inside <table id="summary">
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        for name in ("src", "href"):
            if name in attrs:
                self.links.append((tag, name, attrs[name]))
        if tag == "table" and (self._depth or attrs.get("id") == "summary"):
            self._depth += 1
        if self._depth and tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if self._depth and tag in ("td", "th") and self._cell is not None:
            self.summary_cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if self._depth and tag == "table":
            self._depth -= 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


# ------------------------------------------------------------------------------------------------ HTML


def test_html_holds_summary_published_and_reproduced(rendered):
    page = Page(rendered[1])
    cells = page.summary_cells
    assert cells, "the page has no table with id='summary'"
    row = cells.index("Table 4.1 final validation accuracy")
    # published, n, mean ± sd, min-max, interval, difference, verdict, within the tolerance: one run has no sd
    assert cells[row + 1 : row + 9] == [
        "0.9112", "1", "0.8765", "–", "–", "-0.0347", "not comparable (synthetic data)", "– (±0.03)",
    ]  # fmt: skip
    fbeta = cells.index("Table 4.1 final validation f_beta")
    assert cells[fbeta + 1 : fbeta + 4] == ["0.8696", "1", "0.8123"]
    test = cells.index("test accuracy")
    assert cells[test + 1 : test + 4] == ["0.7546", "1", "0.7321"]  # alexnet's 75.46% against the run's test accuracy
    assert "test ALL recall" in cells and "test weighted F1" in cells
    assert "squeezenet" in cells and "not run" in cells  # a spec without a run
    squeeze = cells.index("squeezenet")
    assert cells[squeeze + 1] == "Table 4.2 final validation accuracy"
    assert cells[squeeze + 2 : squeeze + 10] == ["0.9007", "0", "–", "–", "–", "–", "not run", "– (±0.03)"]


def test_html_is_self_contained(rendered):
    html = rendered[1]
    page = Page(html)
    images = [value for tag, name, value in page.links if tag == "img"]
    assert len(images) >= 10
    assert all(v.startswith("data:image/png;base64,") for v in images)
    for tag, name, value in page.links:
        if name == "href":
            assert value.startswith("#"), f"<{tag} {name}={value!r}> leaves the page"
        else:
            assert value.startswith("data:image/png;base64,"), f"<{tag} {name}={value[:40]!r}> is not inline"
    assert "script" not in page.tags and "link" not in page.tags
    assert not re.search(r"url\(\s*['\"]?(?!data:)", html), "CSS fetches something"
    assert "<style>" in html


def test_synthetic_banner_on_top_and_per_section(rendered):
    _, html, md = rendered
    banner = "SYNTHETIC DATA: built-in cells, not C-NMC"
    assert html.index(banner) < html.index('id="summary"')
    assert html.count(banner) >= 5  # the top and every section or table of a synthetic run
    assert md.index(banner) < md.index("## Summary")


def test_real_data_has_verdicts_and_no_banner(tmp_path, specs):
    root = tmp_path / "results"
    write_alexnet(root, specs, synthetic=False)
    html = report.render_report(root)[0].read_text()
    assert "SYNTHETIC DATA" not in html
    assert "Real data" in html
    cells = Page(html).summary_cells
    row = cells.index("Table 4.1 final validation accuracy")
    assert cells[row + 7 : row + 9] == ["inconclusive", "no (±0.03)"]  # one run; 0.8765 against 0.911207
    fbeta = cells.index("Table 4.1 final validation f_beta")
    assert cells[fbeta + 7 : fbeta + 9] == ["inconclusive", "no (±0.05)"]
    test = cells.index("test accuracy")
    assert cells[test + 7 : test + 9] == ["inconclusive", "yes (±0.05)"]  # 0.7321 against 0.7546, tolerance 0.05
    assert '<td class="bad">no (±0.03)</td>' in html and '<td class="ok">yes (±0.05)</td>' in html


def test_provenance(rendered):
    html = rendered[1]
    for text in ("0123abcd", "smoke", "torch 2.14.1", "fastai 2.8.12", "cpu", "built-in synthetic cells"):
        assert text in html
    assert "1m 02s" in html  # 5 runs of 12.5 s
    assert "3.11.9" in html


def test_sections_kfold_bayesian_ensembles_lr_find(rendered):
    html = rendered[1]
    # k-fold: published folds beside the variants, mean ± std, and the variant that did not run
    compare = html[html.index('id="kfold-compare"') : html.index('id="table-4.9"')]
    assert "kfold_independent" in compare and "kfold_subjects" in compare and "not run" in compare
    assert "0.928891" in compare  # Table 4.9's last accuracy, the published fold 0
    assert "0.9484 ± 0.0123" in compare and "0.9284 ± 0.0123" in compare  # the variants' kfold_summary
    # Bayesian search: published and reproduced probes with the audit's exact flags
    bayes = html[html.index("Bayesian search (Fig 4.12)</h3>") :]
    assert "0.9542" in bayes and "0.9600 ★" in bayes  # published best (iteration 3), reproduced best (6)
    assert ">yes<" in bayes and ">no<" in bayes
    # ensembles against 87%
    ens = html[html.index("Ensembles: test accuracy") :]
    assert "resnet50 + vgg19 ★" in ens and "0.8610" in ens and "0.8700" in ens and "-0.0090" in ens
    # the learning-rate finder with the report's rate and fastai's suggestion
    assert "The report's rate 1e-5" in html and "2.1e-05" in html
    # notes and choices of the specs
    assert "The epoch-4 row is printed twice." in html
    assert "fastai v1 cnn_learner&#39;s default head dropout ps=0.5." in html


def test_confusion_matrices_map_the_audit_to_all_normal(specs, findings):
    spec = specs["alexnet"]
    found = findings["tables"]["4.1"]
    last = found["epochs"][-1]
    view = views.published_confusion("4.1", spec, found)
    assert spec.recipe.f_beta.positive == "normal"
    # the audit's positive class is normal: TN = ALL called ALL, FP = ALL called normal, FN = normal called ALL
    assert view["matrix"] == [[last["tn"], last["fp"]], [last["fn"], last["tp"]]]
    assert sum(map(sum, view["matrix"])) == found["valid_size"] == 2793
    assert sum(view["matrix"][1]) == found["positives"]  # the normal row holds the positives
    counts = {"tp": 1, "fp": 2, "fn": 3, "tn": 4}
    assert views.as_all_normal(counts, "ALL") == [[1, 3], [2, 4]]
    assert views.as_all_normal(counts, "normal") == [[4, 2], [3, 1]]
    # F1 tables leave P open: no matrix, and the reason
    kf = views.published_confusion("4.9", specs["kfold"], findings["tables"]["4.9"])
    assert kf["matrix"] is None and "not identifiable" in kf["why"]


# ------------------------------------------------------------------------------------------------ several seeds


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory, specs, _cached_audit) -> tuple[Path, str, str, dict]:
    """Three real-data alexnet runs, seeds 0-2, rendered: Table 4.1's accuracy is reproduced (0.90, 0.91, 0.92
    against 0.911207), its f_beta lies above the runs (0.80-0.82 against 0.869598), the test accuracy below
    them (0.90-0.92 against 75.46%)."""
    root = tmp_path_factory.mktemp("seeds") / "results"
    finals = [(0.90, 0.80), (0.91, 0.81), (0.92, 0.82)]
    write_alexnet_seeds(root, specs, finals, [0.90, 0.91, 0.92], synthetic=False)
    html, md = (p.read_text() for p in report.render_report(root))
    return root, html, md, json.loads((root / "report.json").read_text())


def test_the_summary_sets_each_figure_against_the_spread_of_the_seeds(three_seeds):
    _, html, md, _ = three_seeds
    cells = Page(html).summary_cells
    row = cells.index("Table 4.1 final validation accuracy")
    assert cells[row + 1 : row + 9] == [
        "0.9112", "3", "0.9100 ± 0.0100", "0.9000–0.9200", "[0.8603, 0.9597]", "-0.0012", "reproduced", "yes (±0.03)",
    ]  # fmt: skip
    fbeta = cells.index("Table 4.1 final validation f_beta")
    assert cells[fbeta + 7] == "above"
    test = cells.index("test accuracy")
    assert cells[test + 7 : test + 9] == ["below", "no (±0.05)"]
    summary = html[html.index('id="summary-section"') : html.index('id="summary"')]
    assert "reproduced</span> 1, " in summary and "above</span> 1, " in summary and "below</span> 1, " in summary
    worst = summary[summary.index('id="not-reproduced"') :]
    assert worst.index("test accuracy") < worst.index("f_beta")  # 0.1057 below its interval, then 0.0099 above
    assert "published 75.46% lies below the interval [0.8603, 0.9597] of 3 runs (by 0.1057" in worst
    assert (
        "| Table 4.1 final validation accuracy | 0.9112 | 3 | 0.9100 ± 0.0100 | 0.9000–0.9200 | [0.8603, 0.9597] |"
        in md
    )


def test_the_rule_is_explained_at_the_top(three_seeds):
    _, html, md, _ = three_seeds
    for text in (html, md):
        rule = text.index("m ± t(0.975, N−1) · s · √(1 + 1/N)")
        assert rule < text.index("Summary") and "confidence interval of the mean" in text
        assert "half the unit of its last printed digit" in text and "fewer than 3 runs" in text


def test_per_epoch_mean_sd_and_confusion_over_the_seeds(three_seeds):
    _, html, md, _ = three_seeds
    table = html[html.index('id="table-4.1"') :]
    assert "as the mean ± sd of 3 seeds" in table
    assert '<td class="num rep">0.9100 ± 0.0100</td>' in table  # epoch 9's accuracy
    assert "the validation cells of 3 runs (seeds 0, 1, 2; 8379 cells in all)" in table
    assert "summed over the seeds and as the mean per seed" in table
    assert "Reproduced: the validation cells of 3 runs" in md


def test_report_json_holds_one_record_per_published_figure(three_seeds, specs):
    root, _, _, doc = three_seeds
    assert doc["schema_version"] == 1 and doc["counts"]["reproduced"] == 1 and doc["counts"]["below"] == 1
    alexnet = [f for f in doc["figures"] if f["spec"] == "alexnet"]
    assert [(f["table"], f["figure"]) for f in alexnet] == [
        ("4.1", "final validation accuracy"),
        ("4.1", "final validation f_beta"),
        (None, "test accuracy"),
    ]
    acc = alexnet[0]
    required = ("spec", "table", "figure", "published", "n", "seeds", "mean", "sd", "min", "max", "pi_low", "pi_high")
    assert set(required) | {"verdict", "within_tolerance"} <= set(acc)
    assert acc["n"] == 3 and acc["seeds"] == [0, 1, 2] and acc["mean"] == pytest.approx(0.91)
    assert acc["pi_low"] == pytest.approx(0.8603172, abs=1e-7) and acc["verdict"] == "reproduced"
    assert all(f["published"] is not None for f in doc["figures"])  # the unpublished test figures stay out
    squeeze = next(f for f in doc["figures"] if f["spec"] == "squeezenet")
    assert squeeze["n"] == 0 and squeeze["verdict"] == "not_run" and squeeze["mean"] is None


def test_show_and_list_give_the_seeds(three_seeds, cli):
    root = three_seeds[0]
    code, out, _ = cli("show", "alexnet", "--results", root)
    assert code == 0 and "3 runs, seeds 0, 1, 2" in out
    line = next(x for x in out.splitlines() if x.startswith("Table 4.1 final validation accuracy"))
    assert line.split()[5:] == [
        "0.9112", "3", "0.9100", "0.0100", "0.9000", "0.9200", "[0.8603,", "0.9597]", "reproduced", "yes", "(±0.03)",
    ]  # fmt: skip
    assert "0.9100 ± 0.0100" in out  # epoch 9 of Table 4.1
    code, out, _ = cli("list", "--results", root)
    alexnet = next(x for x in out.splitlines() if x.startswith("alexnet"))
    assert code == 0 and "3 (0,1,2)" in alexnet and "alexnet-smoke-seed2-20240101-000002" in alexnet


# ------------------------------------------------------------------------------------------------ Markdown


def test_markdown_references_images_that_exist(rendered):
    root, _, md = rendered
    md_path = root / "report.md"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 10
    for link in links:
        path = md_path.parent / link
        assert path.is_file(), link
        assert path.read_bytes().startswith(PNG_MAGIC)
    assert "| Table 4.1 final validation accuracy | 0.9112 | 1 | 0.8765 | – | – | -0.0347 |" in md
    assert "not run" in md
    assert not re.search(r"\]\((?:https?:|/)", md)


def test_stale_images_are_removed(rendered, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(rendered[0] / "report_files", out / "report_files")  # an earlier report's images
    assert (out / "report_files" / "alexnet-lr-find.png").is_file()
    report.render_report(tmp_path / "no-results", out)
    assert not (out / "report_files" / "alexnet-lr-find.png").exists()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (out / "report.md").read_text())
    assert sorted(p.name for p in (out / "report_files").glob("*.png")) == sorted(Path(x).name for x in links)


# ------------------------------------------------------------------------------------------------ edge cases


@pytest.mark.parametrize("exists", [True, False])
def test_empty_or_missing_results_dir_renders(tmp_path, exists):
    results = tmp_path / "results"
    if exists:
        results.mkdir()
    out = tmp_path / "out"
    html_path, md_path = report.render_report(results, out)
    assert results.is_dir() == exists  # a missing results folder is not created
    html = html_path.read_text()
    assert 'id="summary"' in html and "No finished runs" in html and "SYNTHETIC DATA" not in html
    cells = Page(html).summary_cells
    assert cells.count("not run") >= len(load_all())
    assert "0.9112" in cells
    assert md_path.is_file() and "not run" in md_path.read_text()


def test_profile_selects_runs(tmp_path, specs):
    root = tmp_path / "results"
    full = write_alexnet(root, specs, profile="full", stamp="20240101-000000", seconds=100.0)
    smoke = write_alexnet(root, specs, profile="smoke", stamp="20240102-000000")
    os.utime(full, (1_700_000_000, 1_700_000_000))  # the store orders runs by their folder's time
    os.utime(smoke, (1_700_000_100, 1_700_000_100))
    assert smoke.name in report.render_report(root, tmp_path / "any")[0].read_text()
    html = report.render_report(root, tmp_path / "full", profile="full")[0].read_text()
    assert "alexnet-full-seed0-20240101-000000" in html and smoke.name not in html
    assert "1m 40s" in html


def test_a_broken_environment_or_curve_does_not_stop_the_report(tmp_path, specs):
    root = tmp_path / "results"
    run_dir = write_alexnet(root, specs)
    (run_dir / "environment.json").write_text("{not json")
    (run_dir / "lr_find.json").unlink()
    html = report.render_report(root)[0].read_text()
    assert "no learning-rate finder curve" in html


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda r: r | {"validation": {"accuracy": 0.5}}, "the required key 'validation.cells' is missing"),
        (lambda r: r | {"schema_version": SCHEMA_VERSION + 1}, "was written by a newer version of the suite"),
        (lambda r: "{not json", "is not a run record"),
    ],
    ids=["a summary without most keys", "a newer schema", "not JSON"],
)
def test_a_damaged_record_is_one_sentence_naming_its_file(tmp_path, specs, damage, says):
    from cnmc_repro.errors import UserError

    run_dir = write_alexnet(tmp_path / "results", specs)
    damaged = damage(json.loads((run_dir / "result.json").read_text()))
    (run_dir / "result.json").write_text(damaged if isinstance(damaged, str) else json.dumps(damaged))
    with pytest.raises(UserError) as e:
        report.render_report(tmp_path / "results")
    assert str(run_dir / "result.json") in str(e.value) and says in str(e.value)


def test_filters():
    assert fmt.fixed(0.911207) == "0.9112" and fmt.fixed(None) == "–" and fmt.fixed(0.5, 6) == "0.500000"
    assert fmt.signed(-0.03471) == "-0.0347" and fmt.signed(0.01) == "+0.0100"
    assert fmt.pct(0.87, 0) == "87%" and fmt.sci(1e-06) == "1e-06"
    assert fmt.duration(3.21) == "3.2s" and fmt.duration(75) == "1m 15s" and fmt.duration(4321.5) == "1h 12m 02s"
    assert fmt.verdict_class(Verdict.NOT_COMPARABLE) == "synthetic" and fmt.verdict_class(Verdict.BELOW) == "bad"
    assert fmt.verdict_text(Verdict.NOT_COMPARABLE) == "not comparable (synthetic data)"
    assert fmt.verdict_text(None) == "not run" and fmt.verdict_class(Verdict.INCONCLUSIVE) == "none"
    assert fmt.mean_sd(spread([0.9, 0.92], [0, 1])) == "0.9100 ± 0.0141" and fmt.mean_sd(spread([0.9], [0])) == "0.9000"
    assert fmt.interval(spread([0.9], [0])) == "–" and fmt.interval(None) == "–"
    assert fmt.interval(spread([0.90, 0.91, 0.92], [0, 1, 2])) == "[0.8603, 0.9597]"
    assert fmt.tone(0.04, 0.03) == "bad" and fmt.tone(-0.01, 0.03) == "ok" and fmt.tone(None, 0.03) == ""


def test_report_module_does_not_import_torch(tmp_path):
    code = (
        "import sys\n"
        "import cnmc_repro.report.render as r\n"
        "r.audit = lambda specs: {'tables': {}, 'kfold': {}, 'bayesian': None, 'test_accuracy': {}, "
        "'spec_checks': []}\n"
        f"r.render_report(r.Path({str(tmp_path / 'results')!r}), r.Path({str(tmp_path / 'out')!r}))\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'fastai'))\n"
        "assert not bad, bad\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "out" / "report.html").is_file()


# ------------------------------------------------------------------------------------------------ browser


@pytest.mark.browser
def test_report_in_headless_chromium(rendered, tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    html_path = rendered[0] / "report.html"
    flags = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    url = html_path.resolve().as_uri()
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr and "ERROR:CONSOLE" not in dom.stderr
    cells = Page(dom.stdout).summary_cells
    assert "Table 4.1 final validation accuracy" in cells and "0.9112" in cells and "0.8765" in cells

    shot = tmp_path / "report.png"
    run = subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1400,2000", url], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert "Uncaught" not in run.stderr and "ERROR:CONSOLE" not in run.stderr
    import matplotlib.image
    import numpy as np

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2000, 1400)
    colours = np.unique((pixels[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50, "the screenshot is (nearly) blank"
    top = pixels[:1000, :, :3]
    assert (top < 0.5).any(axis=2).mean() > 0.01, "no dark text in the top half"
    if os.environ.get("CNMC_REPORT_SCREENSHOT"):  # keep it to look at
        shutil.copy(shot, os.environ["CNMC_REPORT_SCREENSHOT"])
