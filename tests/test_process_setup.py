"""The process around a run: glibc's allocator told to keep freed memory (``keep_freed_memory``)."""

import subprocess
import sys

import pytest

# Each round holds 24 tensors of 4 MB (a batched group holds tensors of 0.5-4 MB), then frees them
# all: glibc's defaults give the freed top of the heap back to the OS and the next round faults
# every page in again. Prints whether mallopt applied and the minor page faults a round, after a first.
ROUNDS = """
import resource
import torch
from rlrun.process_setup import keep_freed_memory
applied = keep_freed_memory()
def round_():
    held = [torch.ones(1024, 1024) for _ in range(24)]
    del held
round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    round_()
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def faults_a_round() -> tuple[str, float]:
    done = subprocess.run([sys.executable, "-c", ROUNDS], capture_output=True, text=True, check=True)
    applied, faults = done.stdout.split()
    return applied, float(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_tensors_are_reused_without_page_faults():
    pages = 24 * 1024  # a round's 4 KB pages
    applied, faults = faults_a_round()
    assert applied == "True"
    assert faults < 0.05 * pages, faults  # glibc's defaults fault in nearly every page, most rounds
