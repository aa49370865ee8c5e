"""Stage-by-stage agreement of a backend with the numpy reference (as llm.c checks its kernels):
probabilities, loss and accuracy, every gradient tensor by name, then the parameters after steps.
Used by test_agreement.py (every backend) and by backend-specific tests."""

import numpy as np

import fastnet
from fastnet.tolerances import TOLERANCES
from tests.helpers import REFERENCE, random_problem

REF = fastnet.get_backend(REFERENCE)

# name: (N, sizes, pixel kind, all-zero images); pixel kinds as tests.helpers.random_problem
AWKWARD_CASES = {
    "N=37 (not a multiple of the chunk count)": (37, (784, 10, 10), "uint8", 0),
    "N=5 (fewer samples than chunks)": (5, (784, 10, 10), "uint8", 0),
    "N=1": (1, (784, 10, 10), "uint8", 0),
    "all-zero images among others": (40, (784, 10, 10), "uint8", 13),
    "only all-zero images": (9, (50, 7, 3), "uint8", 9),
    "float pixels": (33, (784, 10, 10), "float", 0),
    "hidden width 1": (29, (30, 1, 4), "uint8", 0),
    "hidden width 13, two hidden layers": (41, (64, 13, 9, 10), "float", 2),
    "hidden width 512": (23, (784, 512, 10), "uint8", 0),
    # the numba backend's layer 1 runs 1 to 4 vectors of units per pass (float32's 8 lanes each,
    # float64's 4; 16 and 8 with AVX-512)
    "hidden width 20 (3 vectors of 8 lanes, 5 of 4)": (31, (100, 20, 10), "uint8", 1),
    "hidden width 129 (a mostly padded last pass)": (17, (300, 129, 10), "uint8", 0),
    "three hidden layers": (19, (20, 16, 8, 5, 3), "uint8", 0),
    # the upper layers compute whole tiles of 5 units and pairs of vectors of samples: narrow hidden
    # layers make the extra rows cross more than one layer; 150 samples leave a partial last block
    "narrow hidden layers after the first, a partial block": (150, (30, 6, 1, 2, 4), "uint8", 0),
    # MNIST-like: an odd number of often non-zero pixels (the centre) and rarely non-zero ones (the edges)
    "dense and sparse pixels, a partial last block": (300, (57, 10, 10), "mixed", 3),
    # many classes, in blocks of up to 256 samples (float32 with AVX-512): the softmax's bounded
    # product of the totals (its overflow itself: tests/numba/test_softmax.py)
    "many classes, blocks of up to 256": (600, (40, 8, 40), "uint8", 0),
    "300 classes": (300, (20, 6, 300), "uint8", 0),
}
FLOAT32_AWKWARD_CASES = ["N=37 (not a multiple of the chunk count)", "hidden width 13, two hidden layers",
                         "dense and sparse pixels, a partial last block",
                         "hidden width 20 (3 vectors of 8 lanes, 5 of 4)",
                         "hidden width 129 (a mostly padded last pass)",
                         "narrow hidden layers after the first, a partial block",
                         "many classes, blocks of up to 256"]


def assert_stages_agree(backend, net, X, y, tol, ref_net=None):
    """Forward, loss/accuracy and every gradient of ``backend`` on ``net`` vs the reference on
    ``ref_net`` (default: the same network)."""
    ref_net = ref_net or net
    np.testing.assert_allclose(backend.forward(net, X), REF.forward(ref_net, X), **tol, err_msg="probabilities")
    fast, ref = backend.evaluate(net, X, y), REF.evaluate(ref_net, X, y)
    np.testing.assert_allclose(fast.loss, ref.loss, **tol, err_msg="loss")
    # float32 can flip an argmax whose top two probabilities tie to 7 digits: allow one sample
    assert abs(fast.accuracy - ref.accuracy) <= (0 if net.dtype == ref_net.dtype else 1 / len(y))
    for i, ((dW, db), (rW, rb)) in enumerate(zip(backend.gradients(net, X, y), REF.gradients(ref_net, X, y))):
        np.testing.assert_allclose(dW, rW, **tol, err_msg=f"dW{i + 1}")
        np.testing.assert_allclose(db, rb, **tol, err_msg=f"db{i + 1}")


def assert_steps_agree(backend, net, X, y, steps, tol, lr=0.1):
    """The loss at every step and the parameters after ``steps`` steps, against the reference."""
    fast, ref = net.copy(), net.copy()
    data = fastnet.Dataset(X, y, n_inputs=net.sizes[0], n_classes=net.sizes[-1])
    for s in range(steps):
        rf, rr = backend.step(fast, data, lr=lr), REF.step(ref, data, lr=lr)
        np.testing.assert_allclose(rf.loss, rr.loss, **tol, err_msg=f"loss at step {s + 1}")
    for i, ((W, b), (rW, rb)) in enumerate(zip(fast.params, ref.params)):
        np.testing.assert_allclose(W, rW, **tol, err_msg=f"W{i + 1} after {steps} steps")
        np.testing.assert_allclose(b, rb, **tol, err_msg=f"b{i + 1} after {steps} steps")


def assert_awkward_case_agrees(backend, case):
    """float64: every stage, then the parameters after 3 steps, on AWKWARD_CASES[case]."""
    n, sizes, kind, zeros = AWKWARD_CASES[case]
    X, y = random_problem(n, sizes, seed=n, kind=kind, zero_rows=zeros)
    net = fastnet.Network.init(sizes, seed=1)
    assert_stages_agree(backend, net, X, y, TOLERANCES["float64"])
    assert_steps_agree(backend, net, X, y, 3, TOLERANCES["float64"])


def assert_float32_awkward_cases_agree(backend):
    """float32 against the float64 reference, every stage, on FLOAT32_AWKWARD_CASES."""
    for case in FLOAT32_AWKWARD_CASES:
        n, sizes, kind, zeros = AWKWARD_CASES[case]
        X, y = random_problem(n, sizes, seed=n, kind=kind, zero_rows=zeros)
        net64 = fastnet.Network.init(sizes, seed=1)
        assert_stages_agree(backend, net64.astype("float32"), X, y, TOLERANCES["float32"], ref_net=net64)
