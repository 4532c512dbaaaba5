"""Helpers the tests share (and the benchmarks' server runner): import them from here, not from
a conftest, so a helper has one home and fixtures stay in the conftests."""
