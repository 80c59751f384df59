"""Evaluate an exported model package on a labelled dataset: metrics, the guide's files, a report.

Public API: `evaluate`, `evaluate_out_of_fold` (a model refitted on every image, `train
--refit-all`), `EvaluationSummary`, `ImageResult`, `LabelMetrics`, `ImageMetrics`, and the metric
functions in `edge_agent.evaluation.metrics`.
"""

from edge_agent.evaluation.evaluator import evaluate
from edge_agent.evaluation.out_of_fold import evaluate_out_of_fold
from edge_agent.evaluation.summary import EvaluationSummary, ImageMetrics, ImageResult, LabelMetrics

__all__ = [
    "EvaluationSummary",
    "ImageMetrics",
    "ImageResult",
    "LabelMetrics",
    "evaluate",
    "evaluate_out_of_fold",
]
