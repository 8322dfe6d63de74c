"""Model definitions for the benchmarks (standard architectures, random weights)."""
