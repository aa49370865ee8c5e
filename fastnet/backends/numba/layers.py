"""The layer table: how every kernel finds a layer's sizes, parameters and activations.

The network's parameters are one flat vector (``net.flat``, see fastnet.network): per layer, W
shaped (n_out, n_in) as in numpy, then b. The kernels take it with the layer table, an int64 array
with one row per layer (layer 1 is row 0) and these columns, the only place they are defined:
"""

from __future__ import annotations

import numpy as np

from fastnet.network import layer_offsets

N_IN = 0  # the layer's inputs: D for layer 1
N_OUT = 1  # its units: H for layer 1, K for the last layer
W_AT = 2  # where its W starts in the flat parameter vector
B_AT = 3  # where its b starts
ACT_AT = 4  # where its activations start among the rows of a block's activations (.workspace)
COLUMNS = 5


def layer_table(sizes):
    """The (layers, COLUMNS) int64 table of a network with these layer sizes. Activations are
    stacked layer after layer: layer 1's units are rows 0..H-1 of a block's activations."""
    act_at = np.cumsum([0, *sizes[1:]])
    table = np.zeros((len(sizes) - 1, COLUMNS), np.int64)
    for row, (n_in, n_out, (w, b), a) in enumerate(zip(sizes[:-1], sizes[1:], layer_offsets(sizes), act_at)):
        table[row, [N_IN, N_OUT, W_AT, B_AT, ACT_AT]] = n_in, n_out, w, b, a
    return table


def n_activations(sizes):
    """Rows of a block's activations: every layer's units, stacked."""
    return sum(sizes[1:])
