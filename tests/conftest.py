"""Shared settings of the remoting test suite (tests/test_remoting.py,
tests/gpu/test_third_party.py).

Environment:
  MIG_TEST_BACKEND  host (default: the test double, no GPU) or cuda (the
                    real driver; also runs the GPU-only tests)
  MIG_BUILD_DIR     the CMake build directory (default: <repo>/build)
  MIG_GPUD          a mig-gpud to use instead of the build's (e.g. an
                    AddressSanitizer build); `mig run` reads it
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migtest import BACKEND  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "gpu: needs a real NVIDIA GPU and driver (runs only with MIG_TEST_BACKEND=cuda)",
    )


def pytest_collection_modifyitems(config, items):
    if BACKEND == "cuda":
        return
    skip = pytest.mark.skip(reason="GPU suite only: set MIG_TEST_BACKEND=cuda on a GPU machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
