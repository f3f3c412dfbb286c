"""Shared platform: training loop, sharding, data, checkpoints, optimisers, benchmarks."""
