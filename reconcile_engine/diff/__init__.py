"""Stage 4: diff. operations.py is the statement type every later stage reads (a leaf);
migra_diff.py runs migra and the corrections (corrections/, one module per object kind).
"""
