"""One thin script per DVC stage, run as `python -m stages.<stage> STUDY` (a plain `python stages/tokenize.py` would shadow the standard library's tokenize module)."""
