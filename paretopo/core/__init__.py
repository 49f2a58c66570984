"""The ParetoPO algorithm, pure: no I/O, no configuration objects, no logging set-up.

Modules: ``pareto`` (dominance, non-dominated sorting), ``hypervolume`` (HV, ΔHV, ∇HV),
``scalarization`` (Stage 1, Eqs. 5–6), ``rewards`` (Eq. 4, length efficiency), ``advantages``
(Stage 2, Eqs. 7–9, and the baselines), ``loss`` (the DAPO policy loss). Equation numbers
refer to the project's ``algorithm.md``.
"""
