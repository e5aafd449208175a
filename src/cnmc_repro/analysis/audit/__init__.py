"""Audit of the printed figures of chapter 4: what the numbers say beyond what they show.

The report prints fastai v1 training tables (Tables 4.1-4.4, 4.6-4.14), the bayes_opt log of Fig 4.12 and
four test accuracies, but not the validation-set sizes, the F-beta's beta and positive class, the confusion
matrices, nor the bounds and seed of the Bayesian search. The printed digits pin most of them down:

1. fastai printed ``accuracy`` as correct/N (a float32) to six digits, so the smallest N for which every
   accuracy of a table is some k/N is the table's validation size (:func:`tables.fit_valid_size`).
2. fastai v1's ``FBeta`` is computed from the epoch's confusion matrix; with N known each epoch's errors
   are known, and whole TP/FP/FN reproducing the printed f_beta exist for one beta and one number of
   positives P only (:func:`tables.solve_confusion`). That also gives the confusion matrices.
3. bayes_opt draws its first probes uniformly from the bounds with ``RandomState(random_state)``; the
   bounds are the extremes of the probes that sit on them (Fig 4.12, iterations 6-10) and the seed is
   found by search (:func:`bayes.search_random_state`). The guided probes are asked of bayes_opt 3.4 again
   (:func:`bayes.guided_proposals`).
4. The test accuracies are checked against the 1,867 cells of the test set (:func:`printed.ratio_fits`).

``printed`` holds the arithmetic of a printed figure, ``tables`` the table solver, ``bayes`` the Bayesian
set-up, ``checks`` the k-fold folds, the test accuracies and the specs' fields against the audit; ``findings``
the records with explicit states (:class:`BetaState`, :class:`Agreement`) that they return. Every finding
carries a ``basis``: what it rests on, rendered from its numbers. :func:`audit_findings` gives the records,
:func:`audit` the JSON document, :func:`format_audit` the terminal view (``report_templates/audit.txt.j2``).
Nothing here needs torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnmc_repro.analysis.audit.bayes import BayesFinding, audit_bayesian
from cnmc_repro.analysis.audit.checks import (
    KFoldFinding,
    TestAccuracyFinding,
    audit_kfold,
    audit_test_accuracy,
    spec_checks,
)
from cnmc_repro.analysis.audit.findings import Agreement, BetaState, SpecCheck, TableFinding
from cnmc_repro.analysis.audit.tables import audit_table, shared_positives, table_key_order
from cnmc_repro.spec.schema import Spec

__all__ = [
    "Agreement",
    "AuditFindings",
    "BetaState",
    "audit",
    "audit_findings",
    "format_audit",
    "table_key_order",
]


@dataclass(frozen=True)
class AuditFindings:
    """Everything the audit finds: per printed table, per k-fold spec, the Bayesian search, per published test
    accuracy, and the specs' fields checked against them."""

    tables: dict[str, TableFinding]
    kfold: dict[str, KFoldFinding]
    bayesian: BayesFinding | None
    test_accuracy: dict[str, TestAccuracyFinding]
    spec_checks: list[SpecCheck]

    def to_json(self) -> dict[str, Any]:
        return {
            "tables": {k: t.to_json() for k, t in self.tables.items()},
            "kfold": {k: f.to_json() for k, f in self.kfold.items()},
            "bayesian": None if self.bayesian is None else self.bayesian.to_json(),
            "test_accuracy": {k: t.to_json() for k, t in self.test_accuracy.items()},
            "spec_checks": [c.to_json() for c in self.spec_checks],
        }


def audit_findings(specs: dict[str, Spec]) -> AuditFindings:
    """The audit of every published table, the Bayesian search and the test accuracies, and the specs'
    fields checked against it (see the module docstring)."""
    tables: dict[str, TableFinding] = {}
    for spec in specs.values():
        for key, table in spec.published.tables.items():
            if "accuracy" in table.columns:
                tables[key] = audit_table(key, spec.id, table)
    tables = shared_positives(specs, {k: tables[k] for k in sorted(tables, key=table_key_order)})
    bayes = None
    for spec in specs.values():
        if spec.published.bayesian:
            n = next((tables[k].valid_size for k in spec.published.tables if k in tables), None)
            bayes = audit_bayesian(spec, n)
            break
    tests = {
        spec.id: audit_test_accuracy(spec.published.test_accuracy)
        for spec in specs.values()
        if spec.published.test_accuracy
    }
    kfold = {
        spec.id: audit_kfold(spec, tables)
        for spec in specs.values()
        if spec.kind == "kfold" and any(k in tables for k in spec.published.tables)
    }
    return AuditFindings(tables, kfold, bayes, tests, spec_checks(specs, tables, bayes))


def audit(specs: dict[str, Spec]) -> dict[str, Any]:
    """:func:`audit_findings` as the JSON-ready document that ``reproduce audit --json`` prints and the report reads."""
    return audit_findings(specs).to_json()


def format_audit(doc: dict[str, Any]) -> str:
    """The terminal view of :func:`audit`'s document (``report_templates/audit.txt.j2``): an overview of the
    tables, a few lines per table with its confusion matrices, the Bayesian iterations with exact yes/no, the
    test accuracies and the spec fields that disagree with the audit or that it cannot decide."""
    from cnmc_repro.report.format import environment  # the report's templates; analysis does not depend on them

    groups = Agreement.group(doc["spec_checks"])
    text = (
        environment()
        .get_template("audit.txt.j2")
        .render(
            tables=doc["tables"],
            kfold=doc["kfold"],
            bayesian=doc["bayesian"],
            test_accuracy=doc["test_accuracy"],
            test_cells=sorted({t["test_cells"] for t in doc["test_accuracy"].values()}),
            checks=len(doc["spec_checks"]),
            agreeing=len(groups[Agreement.AGREES]),
            disagreeing=groups[Agreement.DISAGREES],
            undecided=groups[Agreement.UNDECIDABLE],
            beta_state=BetaState.of,
            BetaState=BetaState,
        )
    )
    return text.rstrip("\n")
