"""What the tests and the benchmarks share: neither a test nor a benchmark (docs/testing.md)."""
