"""heapindex's bench package: the benchmark matrix and compare.

Imported as bench.NAME beside the analysis package (analysis/__init__.py
says how the ./heapindex command finds both).
"""
