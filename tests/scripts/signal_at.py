"""Test-only hook: run src/train.py as a user would, and have the process send itself a signal right after
training iteration N (no sleep-and-kill race).

    python tests/scripts/signal_at.py N SIGTERM <train.py overrides...>
"""

import os
import runpy
import signal
import sys
from pathlib import Path

from avrnn.training.module import AVRNNModule

iteration, signum = int(sys.argv[1]), getattr(signal, sys.argv[2])
original = AVRNNModule.training_step


def sending(self, *args):
    out = original(self, *args)
    if self.iteration == iteration:
        os.kill(os.getpid(), signum)
    return out


AVRNNModule.training_step = sending
train = Path(__file__).resolve().parents[2] / "src" / "train.py"
sys.argv = [str(train), *sys.argv[3:]]
runpy.run_path(str(train), run_name="__main__")
