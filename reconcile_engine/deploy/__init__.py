"""Stage 8: apply reviewed plans (apply.py) and roll back the last one (rollback.py), under one
advisory lock (advisory_lock.py), recorded in the history table (history.py).
"""
