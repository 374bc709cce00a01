"""Numba twins of the compiled core (CPU). Importing this package needs Numba."""
