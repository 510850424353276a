"""Read-path benchmark harness: a deterministic dataset, a real server, timings over HTTP.

``python -m benchmarks.run`` (``make bench``) builds or reuses the dataset, serves it with uvicorn
and reports each 30-day read as ratios against baselines measured in the same run.
"""
