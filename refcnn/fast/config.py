"""The fast path's knobs: one frozen value passed to each call, no module state.

None of these changes what is computed, only how the work is cut: block sizes
choose how many output rows one patch matrix or pooling pass covers, and
``threads`` how many blocks run at once. The conv's block sizes and bias
folding change the shapes of its matrix products, so its results may differ
between settings in the last bits; the pooling block size never changes a
result, nor ``threads`` except the depthwise weight gradient's last bits.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from refcnn._params import check_int

#: Default cap, in bytes, on the patch matrix a conv builds at once (``workspace_bytes=``).
DEFAULT_WORKSPACE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class FastConfig:
    """Tuning of the blocked fast path (threads for the depthwise conv); the defaults
    suit a CPU with a 2 MiB L2 cache per core.

    Parameters
    ----------
    block_target_bytes : int
        Conv patch blocks aim at this size even when ``workspace_bytes`` allows
        more: a block that stays in cache between its gather and its matrix
        product beats one big product. Default 8 MiB.
    channelwise_block_bytes : int
        Bytes of output per block of the depthwise conv, chosen so that the
        block and its padded input rows stay in an L2 cache. Default 1 MiB (one
        ``einsum`` per block: fewer, longer calls beat 256 KiB blocks, 7.4 -> 6.2
        ms for the backward of the benchmarks' depthwise layer).
    fold_bias_max_k : int
        Patch matrices with fewer columns than this carry the bias as a column
        of ones (the product adds it) instead of a pass of its own. Default 256.
    pool_block_bytes : int
        Bytes of padded input per pooling block: small enough to stay in cache
        while every window tap reads it. Default 512 KiB.
    threads : int
        Threads for the depthwise conv's blocks, which then run concurrently
        (NumPy releases the GIL inside its loops); a pool of threads is made
        for the call and shut down before it returns. 1 (the default) runs
        everything in the caller: on the 2-core machine this was tuned on, a
        second thread made the depthwise 3x3 layer of the benchmarks slower
        (measured with the earlier shift-and-add loops: forward 4.0 -> 5.3 ms,
        backward 8.9 -> 10.7 ms; with the einsum blocks two threads were within the
        noise of one, 3.1-3.5 ms against 3.5 ms forward and slower backward).
        Each thread sums its own part of the depthwise dw, so ``threads`` may
        change dw in the last bits. Pooling ignores it (its scatter,
        ``np.add.at``, holds the GIL).
    """

    block_target_bytes: int = 8 * 2**20
    channelwise_block_bytes: int = 2**20
    fold_bias_max_k: int = 256
    pool_block_bytes: int = 512 * 2**10
    threads: int = 1

    def __post_init__(self):
        for f in fields(self):
            check_int(getattr(self, f.name), f"FastConfig.{f.name}")


#: The configuration every call uses unless given another.
DEFAULT_CONFIG = FastConfig()


def check_config(config) -> FastConfig:
    """``config`` itself, or a TypeError naming it."""
    if not isinstance(config, FastConfig):
        raise TypeError(f"config must be a refcnn.fast.FastConfig, got {type(config).__name__}")
    return config
