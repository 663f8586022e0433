"""Stage 5: the plan. build.py makes the Plan from the diff's operations, hazards.py says what each
does to a live table, online.py moves slow statements out of the transaction, planfile.py writes
and reads the reviewed, sealed plan file.
"""
