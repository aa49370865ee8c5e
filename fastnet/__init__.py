"""fastnet: a from-scratch MNIST network with a plain-numpy reference and a fused Numba backend.

    import fastnet
    net = fastnet.Network.init((784, 10, 10), seed=0)
    backend = fastnet.get_backend("numba")          # or "numpy"
    loss, acc = backend.step(net, X, y, lr=0.1)     # one full-batch gradient-descent step
    history = fastnet.fit(net, X, y, iterations=500, lr=0.1, backend="numba")
"""

from fastnet.backends import Backend, StepResult, available_backends, get_backend
from fastnet.inputs import Dataset
from fastnet.network import Network
from fastnet.training import History, fit

__version__ = "0.1.0"
__all__ = ["Backend", "Dataset", "History", "Network", "StepResult", "available_backends", "fit", "get_backend"]
