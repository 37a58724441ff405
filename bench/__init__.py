"""The Event Manager benchmark (issue 6): ``python -m bench``, described in ``bench/run.py``."""
