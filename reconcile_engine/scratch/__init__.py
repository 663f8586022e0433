"""Stage 2: the scratch space where the desired SQL is built: scratch servers and databases
(databases.py), the run's build role (build_role.py), inert builds (inert.py), and the cache of
desired states already built (desired_cache.py).
"""
