"""Plots and the HTML report (matplotlib Agg; no display needed)."""
