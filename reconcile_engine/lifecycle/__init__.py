"""Partition lifecycle: which partitions the as-of date needs (windows.py) and 'reconcile maintain'
(maintain.py), which creates them on the target without a reviewed plan.
"""
