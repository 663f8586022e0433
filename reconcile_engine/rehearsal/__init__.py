"""Stage 6: rehearse a plan on a copy of the target and its reverse on the declared state
(rehearse.py); proof.py runs stages 2-6 for one plan.
"""
