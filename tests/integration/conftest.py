"""Integration tests use the real-service fixtures of tests/conftest.py."""
