"""agentwatch side-by-side benchmark runner (bench/run.py)."""
