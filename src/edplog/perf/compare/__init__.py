"""``edplog perf compare``: the same workloads on the machine's limits, edplog and its peers.

One module per family (limits, embedded, broker, redis, nats), a model of figures and runs,
process management for the servers, and the report and chart writers. ``run_compare`` in
``runner`` is the entry point the command calls.
"""
