"""Stopping a child started with ``start_new_session=True`` and everything it started (dev fleet, load tests,
benchmarks): SIGTERM first, a grace period, then SIGKILL to its whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen[bytes], grace_s: float = 10.0, term_group: bool = False) -> bool:
    """SIGTERM ``proc`` (its whole group when ``term_group``), wait up to ``grace_s``, then SIGKILL what is left
    of the group. Returns whether it had ended within the grace period."""
    ended = True
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if term_group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            ended = False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    return ended
