"""A Python function whose import fails (for tests/daemon/test_instances.py)."""
raise RuntimeError("this module cannot be imported")
