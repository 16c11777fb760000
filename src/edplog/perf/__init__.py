"""Benchmarks that ship with edplog: ``edplog perf log|produce|consume|compare``."""
