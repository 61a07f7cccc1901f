"""Benchmarks run by ``make bench``: each module prints ratios against a baseline run in-process."""
