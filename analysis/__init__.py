"""heapindex's analysis package: report, tune, and what they share.

Run through the root ./heapindex command, which puts the directory holding
this package (the source tree, or the installed PKGDATADIR) first on
sys.path, so the modules import one another as analysis.NAME and bench.NAME.
Tests: /usr/bin/python3 -m bench.test_pipeline from that directory.
"""
