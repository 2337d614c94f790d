"""Benchmarks, one command each, printing one JSON object on stdout."""
