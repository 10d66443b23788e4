"""What the gateway tells its operator while it runs: structured log events
(one line per verdict, delivery outcome and refusal) and Prometheus metrics.

Sits below smtp/, delivery/ and app/ (they report through it) and above the
pipeline (whose Verdict it describes); it does no I/O of its own but logging.
"""
