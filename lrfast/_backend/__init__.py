"""Backends: pack tables, pick the kernel, launch. Nothing here is public API."""
