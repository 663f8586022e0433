"""Stage 1: declared files -> desired SQL. Reading schema/, partitions/, views/, policies/ (files.py),
admitting only definitions (admission.py), and rendering partition specs (partition_specs.py).
"""
