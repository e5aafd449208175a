"""Number formatting and the Jinja2 environment shared by every rendered text: the report's HTML and
Markdown and the terminal views of ``show`` and ``audit``. Each filter is the one definition of its format."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from cnmc_repro.analysis.compare import within
from cnmc_repro.analysis.seeds import Spread, Verdict
from cnmc_repro.paths import project_root

TEMPLATES = project_root() / "report_templates"


def environment() -> Environment:
    """The templates of ``report_templates/`` with the filters below; HTML is autoescaped, text is not."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        fixed=fixed,
        signed=signed,
        pct=pct,
        sci=sci,
        duration=duration,
        when=when,
        verdict_class=verdict_class,
        verdict_text=verdict_text,
        tone=tone,
        mean_sd=mean_sd,
        interval=interval,
        yes_no=yes_no,
        md=md_cell,
        plural=plural,
        ljust=ljust,
        rjust=rjust,
    )
    return env


def fixed(value: float | None, digits: int = 4) -> str:
    """0.911207 -> "0.9112" (``digits`` decimals); None -> "–"."""
    return "–" if value is None else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 4) -> str:
    """A difference with its sign: "+0.0123", "-0.0456"; None -> "–"."""
    return "–" if value is None else f"{value:+.{digits}f}"


def pct(value: float | None, digits: int = 2) -> str:
    """0.7546 -> "75.46%"; None -> "–"."""
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def sci(value: float | None) -> str:
    """A rate or weight: 0.0072035 -> "0.0072", 1e-06 -> "1e-06"; None -> "–"."""
    return "–" if value is None else f"{value:.3g}"


def duration(seconds: float | None) -> str:
    """4321.5 -> "1h 12m 02s"; 75 -> "1m 15s"; 3.21 -> "3.2s"."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def when(moment: dt.datetime | None) -> str:
    return "–" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


VERDICT_TEXT = {
    Verdict.REPRODUCED: "reproduced",
    Verdict.ABOVE: "above",
    Verdict.BELOW: "below",
    Verdict.INCONCLUSIVE: "inconclusive",
    Verdict.NOT_COMPARABLE: "not comparable (synthetic data)",
    Verdict.NOT_RUN: "not run",
    Verdict.NOT_PUBLISHED: "not published",
}
VERDICT_CLASS = {
    Verdict.REPRODUCED: "ok",
    Verdict.ABOVE: "bad",
    Verdict.BELOW: "bad",
    Verdict.NOT_COMPARABLE: "synthetic",
}


def verdict_text(verdict: Verdict | None) -> str:
    """A verdict of ``seeds.verdict`` in words; None (no comparison) is "not run"."""
    return VERDICT_TEXT[verdict or Verdict.NOT_RUN]


def verdict_class(verdict: Verdict | None) -> str:
    """A CSS class for a verdict: the one place where verdicts get their colour."""
    return VERDICT_CLASS.get(verdict, "none")


def tone(difference: float | None, tolerance: float | None, synthetic: bool = False) -> str:
    """The CSS class of one per-epoch difference of the runs' mean: within the spec's tolerance or not."""
    if synthetic and difference is not None:
        return "synthetic"
    inside = within(difference, tolerance)
    return "" if inside is None else ("ok" if inside else "bad")


def mean_sd(spread: Spread | None, digits: int = 4) -> str:
    """The runs' figure: "0.8765" for one run, "0.8765 ± 0.0123" for several; None -> "–"."""
    if spread is None:
        return "–"
    return fixed(spread.mean, digits) + (f" ± {spread.sd:.{digits}f}" if spread.sd is not None else "")


def interval(spread: Spread | None, digits: int = 4) -> str:
    """The prediction interval: "[0.8603, 0.9597]"; "–" without one (fewer than two runs)."""
    if spread is None or spread.pi_low is None:
        return "–"
    return f"[{spread.pi_low:.{digits}f}, {spread.pi_high:.{digits}f}]"


def yes_no(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "no")


def md_cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def ljust(text: Any, width: int) -> str:
    """Text padded on the right to ``width`` (terminal columns)."""
    return str(text).ljust(width)


def rjust(text: Any, width: int) -> str:
    """Text padded on the left to ``width`` (terminal columns of numbers)."""
    return str(text).rjust(width)
