"""The validation suite: six test-time-learning properties judged against controls, a loss-by-position curve
(reported, not judged) and module exactness (suite.EXPERIMENTS, in that order).

    from nested_learning.validation import run_suite
    results = run_suite(model, quick=False, progress=lambda fraction, message: ...)
    [r.to_dict() for r in results]       # name, claim, pass_rule, passed, seeds, metrics with 95% CIs, tables

``python -m nested_learning validate --help`` runs it from the shell; docs/validation.md explains
each experiment, its controls and its pass rule.
"""
from .report import markdown, read_json, to_document, write_json, write_markdown
from .stats import Estimate, Result, bootstrap, paired_difference
from .suite import DEFAULT, EXPERIMENTS, QUICK, SuiteSettings, run_metadata, run_suite

__all__ = ["DEFAULT", "EXPERIMENTS", "Estimate", "QUICK", "Result", "SuiteSettings", "bootstrap", "markdown",
           "paired_difference", "read_json", "run_metadata", "run_suite", "to_document", "write_json", "write_markdown"]
