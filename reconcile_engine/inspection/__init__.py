"""Stage 3: inspect a database. catalog_queries.py holds the SQL, snapshot.py our own normalized
snapshot (fingerprints, convergence), migra_view.py the schemainspect view that migra diffs.
"""
