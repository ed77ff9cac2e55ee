"""Fault harness and soak run (GitHub issue "Faults and hostile input", items 1 and 2).

``python -m faults [--quick] [--out DIR]``: couriers push signed Kdniao traffic over HTTP to two
``waybill-watch ingest`` replicas while a nemesis SIGKILLs workers, takes a broker down and
fills or write-protects a worker's data dir; a verifier then reads every topic from the start
and checks the outputs against ``waybill-watch replay`` of what was accepted.

``python -m faults soak --minutes M --rate R``: the same traffic at a steady rate with no faults;
memory, lag, latency and errors sampled every 10 s, plotted, and judged for growth.
"""
