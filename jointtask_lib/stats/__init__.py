"""Statistics for the verdicts: the pooled transition model, the power planner, multiplicity.

* :mod:`.pooled` -- :func:`pooled_reduction`: every run is one learned / not-learned outcome
  (accuracy against an absolute bar), pooled over seeds and sizes in one logistic model of
  log(parameters) with a condition term, a lapse rate and a random shift per (condition, seed)
  curve.  Gives the reduction factor, its profile-likelihood CI, the likelihood-ratio p-value
  and, beside it, a model-free width-stratified exact test.
* :mod:`.power` -- :func:`plan_power`: power, false-positive rate and CI coverage of a design
  (seeds x widths) by simulation from a stated or fitted curve (``jointtask power``).
* :mod:`.multiplicity` -- :func:`holm`: Holm's step-down adjustment within a family of claims.

This package depends only on numpy and scipy (no torch), so the planner starts fast.
"""

from .multiplicity import holm
from .pooled import PooledReduction, TransitionCurve, exact_stratified_test, pooled_reduction

__all__ = ["PooledReduction", "TransitionCurve", "exact_stratified_test", "holm", "pooled_reduction"]
