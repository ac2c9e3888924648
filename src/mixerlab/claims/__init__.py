"""Claims as part of a study: declared in the spec (:mod:`~mixerlab.claims.claim`), checked
against its grid (:mod:`~mixerlab.claims.check`) and registered in the study folder before
the data (:mod:`~mixerlab.claims.registration`). Decided by the analysis
(:func:`mixerlab.analysis.claims.decide_claims`), which imports this package from above."""

from mixerlab.claims.claim import ClaimSpec, GapSpec

__all__ = ["ClaimSpec", "GapSpec"]
