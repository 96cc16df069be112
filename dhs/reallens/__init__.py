"""Real-lens training sets (stage 6, Paper IV parity): known-lens tables, positive crossmatch, negative-pool
filters, N2 confusers, derived columns and splits, stratified sampling, cutouts and validation.

Pure numpy/astropy logic, no Spark (the Spark wiring is :mod:`dhs.stages.stage6`).
"""
