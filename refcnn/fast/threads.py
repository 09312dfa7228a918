"""Blocks of independent work run on a pool of threads made for one call.

NumPy releases the GIL inside its ufunc loops and matrix products, so blocks
of a layer computed by short NumPy calls run concurrently on several cores.
No pool outlives the call that made it (nothing is kept between calls).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


def parallel_map(fn, items, threads):
    """``[fn(chunk) for chunk in chunks]``: ``items`` (a list) cut into at most
    ``threads`` contiguous chunks of about equal length, run concurrently on a pool
    made for this call; a single chunk runs in the caller's thread."""
    return parallel_chunks(fn, split(items, threads))


def parallel_chunks(fn, chunks):
    """``[fn(chunk) for chunk in chunks]``, the chunks run concurrently."""
    if len(chunks) <= 1:
        return [fn(chunk) for chunk in chunks]
    with ThreadPoolExecutor(len(chunks), thread_name_prefix="refcnn") as executor:
        return list(executor.map(fn, chunks))


def split(items, parts):
    """``items`` cut into at most ``parts`` contiguous non-empty chunks of about equal
    length."""
    k = max(1, min(parts, len(items)))
    bounds = [len(items) * i // k for i in range(k + 1)]
    return [items[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


def split_whole_images(blocks, parts):
    """Blocks ``(n0, n1, r0, r1)`` cut into at most ``parts`` contiguous chunks that
    never split one image's blocks between chunks (blocks of rows of one image may
    write overlapping padded rows; blocks of different images never do)."""
    images = []
    for blk in blocks:
        if images and images[-1][-1][0] == blk[0] and blk[2] > 0:
            images[-1].append(blk)
        else:
            images.append([blk])
    return [[blk for image in chunk for blk in image] for chunk in split(images, parts)]
