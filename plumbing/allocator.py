"""Freed memory kept for the next tensor: glibc's malloc asked not to hand large blocks back to the kernel.

Every training step and every sampled token allocates and frees the same large tensors again
(activations, gradients, the (B, V) scores). glibc serves a block above its mmap threshold (128 KiB
at first, raised as such blocks are freed, to at most 32 MiB) with fresh pages from the kernel and
unmaps them when it is freed, and it returns the top of its heap to the kernel once more than its
trim threshold is free there. Either way the next step touches pages it does not have: a page fault
each, and the kernel zeroes every one. Measured on a 2-core Xeon (SmolLM2-135M, a bfloat16 AdamW
step of 8 x 128 tokens): 380,000 page faults a step (1.5 GB), median 3.2 s; with the two thresholds
below, no page fault after the second step, median 2.6 s. The same holds for a sampled token's
(32, 49,152) scores: 12-14 ms of processing and top-k, 6-7 ms with the memory kept.

What it costs: up to TRIM_BYTES of freed memory stays in the process instead of going back to the
machine (the resident size stays at the step's peak). And one trap: a single block of the same large
size allocated and freed over and over, with small objects left between, makes the heap grow by that
size each time (an aligned block never fits the exact hole the last one left); a training step's many
tensors, freed together, merge and are served again (measured: flat over 60 steps). jemalloc and tcmalloc,
which PyTorch's CPU tuning guide suggests preloading, keep freed memory the same way; this needs
nothing installed.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (glibc's malloc.h)
MMAP_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap, and go back to it when freed
TRIM_BYTES = 2**31 - 1  # the heap keeps up to 2 GiB free at its top (mallopt takes an int)


def keep_freed_memory() -> str:
    """Raise glibc's mmap and trim thresholds for this process (see the module docstring); what was done, in words.

    Elsewhere (macOS, musl, Windows) nothing changes, and the answer says so."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return f"the system's allocator as it is ({platform.system()}, no glibc)"
    libc = ctypes.CDLL(None)  # the process's own symbols: glibc's mallopt
    done = libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(MMAP_BYTES)) and libc.mallopt(M_TRIM_THRESHOLD, ctypes.c_int(TRIM_BYTES))
    if not done:
        return "glibc refused the thresholds: freed memory goes back to the kernel"
    return f"glibc keeps freed blocks up to {MMAP_BYTES >> 30} GiB and {TRIM_BYTES >> 20} MiB free at the top of its heap"
