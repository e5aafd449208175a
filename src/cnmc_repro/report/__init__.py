"""Report: takes stored runs, the specs and the audit; gives ``results/report.html`` and ``results/report.md``
(Jinja2 templates in ``report_templates/``), and the terminal views of ``show`` and ``audit``."""
