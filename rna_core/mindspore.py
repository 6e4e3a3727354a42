"""MindSpore entry points for a user's own cell; importing this module imports mindspore (``import rna_core`` does
not). ``randomize(cell, norms="bn+in", graph_mode=...)`` turns a cell's BatchNorm layers into RNA slots (APART-ready
BN candidates; ``random_weight`` adds CTRW's random weight) and ``next_draw(cell)`` draws the next path where hooks do
not run (compiled code); see ``backends/mindspore/own_model.py``.
"""

from .backends.mindspore.own_model import next_draw, randomize

__all__ = ["next_draw", "randomize"]
