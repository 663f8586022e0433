"""Checks beside the pipeline: the security lint on the declared state (security_rules.py),
squawk on plan statements (squawk.py), and policy tests on the declared state (policy_tests.py).
"""
