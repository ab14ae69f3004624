"""Pure figures and statistics over rows the store returns: no database, no Temporal, no I/O.

`make unit` tests every module here; the statistics are checked against SciPy and statsmodels
(tests/unit/test_statistics_reference.py), or are theirs outright (docs/metrics.md#statistics).
"""
