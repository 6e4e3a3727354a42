"""MindSpore's CPU thread counts follow the cores available (or the user's setting), once per process."""

import os
import subprocess
import sys

CODE = """

from rna_core.registry import get_backend
first = get_backend("mindspore")
second = get_backend("mindspore", mode="graph", threads=7)
print(first.threads, second.threads)
"""


def test_threads_follow_the_setting_once_per_process():
    env = {**os.environ, "RNA_MINDSPORE_THREADS": "3"}
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split()[-2:] == ["3", "None"], out
