"""Stage 0 in reverse (reconcile pull): a live database -> the project's declared files.

dump (pg_dump of the managed schemas) -> statements (parsed; what is not a definition left out)
-> subjects (what each statement is about) -> partition_inference (rolling windows as specs)
-> layout (statements into files) -> writer (the files on disk, refusing to overwrite).
"""
