"""Benchmark campaigns for ghga-cli: ``python -m benchmarks run CONFIG``, then ``report``.

See benchmarks/README.md.
"""
