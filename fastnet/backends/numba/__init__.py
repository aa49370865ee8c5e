"""The ``numba`` backend: the reference's mathematics as fused ``@njit`` kernels, run on two cores.

Shape letters: N samples, D inputs, H layer-1 units, K classes (as in fastnet.network); and, in
this package, P parameters, B samples per block, C chunks, **Hp** H padded to whole vectors.

One training step, module by module (``backend.step(net, X, y, lr=0.1)``):

1. :mod:`.backend` -- ``NumbaBackend._step``: the arguments were checked by
   fastnet.backends.base; the pixels are prepared once per dataset by :mod:`.features` (the
   samples ordered so that similar ones share a block (:mod:`.similar`), each block's often
   non-zero pixels stored as they are, the rest as compressed rows; labels are read through that
   order), the buffers once per network shape
   by :mod:`.workspace` (where ``Hp`` and every layout invariant the kernels rely on are set and
   asserted). Layer 1's weights are copied pixel-major and by tile of units
   (``first_layer.gather_weights``).
2. :mod:`.chunks` -- ``chunk_pass``: the blocks are split into C fixed chunks (:mod:`.flags`),
   dealt to the backend's worker threads (the kernels release the GIL). Per block of B samples:

   - :mod:`.first_layer` ``forward``: layer 1 = :mod:`.dense_pixels` (a small matrix product over
     the block's often non-zero pixels) + :mod:`.sparse_pixels` (each sample's non-zero rest), scaled,
     plus bias, ReLU;
   - :mod:`.upper_layers` ``forward``: layers 2..L, feature-major over the block's samples, in
     register tiles like the dense pixels';
   - :mod:`.softmax` ``softmax_xent``: probabilities, the loss and the correct predictions;
   - :mod:`.upper_layers` ``backward``: gradients of layers L..2, every bias gradient summed
     there (layer 2's included), and the deltas of layer 1;
   - :mod:`.first_layer` ``backward``: W1's gradient (dense and sparse pixels) and b1's.

   Each chunk adds into its own buffers only (``Buffers.flat_grads``, ``w1t_grads``), so no
   thread races another.
3. :mod:`.chunks` -- ``reduce_gradients`` sums the chunks' buffers in chunk order (bit-identical
   for any thread count) into the mean gradient, W1's back in its (H, D) layout; ``update``
   applies it. The loss and accuracy come back from the same pass.

The layers are found through the layer table (:mod:`.layers`); the hand-vectorised kernels use
the SIMD vectors of :mod:`.vector`; every kernel's compile options come from :mod:`.flags` and
its compiled code is cached on disk by :mod:`.kernel_cache`; with an empty cache, :mod:`.compiling`
compiles a path's kernels on two cores (this process and a helper process) before its first call.
The upper-layer and softmax block
functions are written to be called by any pass over the data, and the fused mini-batch epoch
(:mod:`.epoch`) calls them too; its threads share each batch's first layer and meet at the spin
barrier of :mod:`.sync`.
"""

from fastnet.backends.numba.backend import BACKEND, NumbaBackend

__all__ = ["BACKEND", "NumbaBackend"]
