"""``import waveflow`` asks OpenMP's idle threads to sleep, not spin (OMP_WAIT_POLICY=PASSIVE), unless the user
chose otherwise or torch was loaded first (then it is too late to matter). On 2 cores shared with another job,
spinning made vocoding 3-10x slower: scripts/bench_synth.py measures it (README, Benchmarks)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW = "import os, sys; {first}import waveflow; print(os.environ.get('OMP_WAIT_POLICY'))"


def policy(first: str = "", **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    proc = subprocess.run([sys.executable, "-c", SHOW.format(first=first)], env={**base, **env}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("first, env, expected", [
    ("", {}, "PASSIVE"),                         # waveflow loads torch: idle threads sleep
    ("", {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),  # the user's choice stands
    ("import torch; ", {}, "None"),              # torch came first: its OpenMP runtime has read the setting
])
def test_import_sets_a_passive_openmp_wait_policy(first, env, expected):
    assert policy(first, **env) == expected
