"""Per-step importance-sampling diagnostics, from quantities the loop already has.

Relates acceptance and accuracy to the gap between the models: for methods that score
the small model's candidates under pi_B (``gsi``, ``gsi_no_reject``) each step records
the effective sample size of the normalised importance weights and the mean
``log pi_B - log pi_S`` of the candidates (whose expectation is -KL(pi_S || pi_B)).
"""

from __future__ import annotations

import numpy as np

from gsi.methods import StepScores
from gsi.methods.selection import clean


def importance_diagnostics(
    scores: StepScores, probabilities: np.ndarray | None
) -> tuple[float | None, float | None]:
    """``(ess, log_ratio)`` of one step, or ``(None, None)`` without both log-probs.

    ``ess = 1 / sum_i w_i^2`` (in [1, n]) of the method's normalised selection weights,
    which for GSI are the importance weights ``exp(beta r_i) pi_B / pi_S``; ``log_ratio``
    is the mean of ``log pi_B - log pi_S`` over the candidates where it is finite.
    """
    if scores.logp_target is None or scores.logp_proposal is None:
        return None, None
    ratio = clean(scores.logp_target) - clean(scores.logp_proposal)
    finite = ratio[np.isfinite(ratio)]
    log_ratio = float(finite.mean()) if finite.size else None
    ess = float(1.0 / np.square(probabilities).sum()) if probabilities is not None else None
    return ess, log_ratio
