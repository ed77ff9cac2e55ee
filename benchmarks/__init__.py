"""Benchmarks (``make bench``): figures are printed with the command that produced them."""
