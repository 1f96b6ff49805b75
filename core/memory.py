"""Peak memory of this process: CUDA's max allocated, or on the CPU Linux's peak RSS (VmHWM)."""

from __future__ import annotations

from pathlib import Path

import torch


def reset_peak_memory() -> None:
    """Start a new peak: CUDA's counter, or Linux's peak-RSS mark."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux: the peak since start-up is all there is
        pass


def peak_memory_gib() -> float:
    """CUDA's max allocated since the last reset; on the CPU the process's peak RSS since then."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**30
    peak = peak_rss_gib("self")
    if peak is None:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return peak


def peak_rss_gib(pid: int | str) -> float | None:
    """A process's peak resident memory (Linux's VmHWM), or None where there is no /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")) / 2**20
    except (OSError, StopIteration):
        return None
