"""Helpers shared by test modules (builders, asserts, script loaders); no test module imports another."""
