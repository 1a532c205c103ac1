"""Stopping `python -m nercc.serve`: SIGTERM and Ctrl-C end the service cleanly (a server that
stops has not failed); a second signal while it shuts down interrupts as any run."""

import os
import signal
import threading
import time

import pytest

from nercc.tasks.serve import stop_on_signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_first_signal_stops_the_service_and_the_second_interrupts(signum):
    stop = threading.Event()
    before = signal.getsignal(signum)
    seen = []

    def previous(received, frame):
        seen.append(received)

    signal.signal(signum, previous)
    try:
        with stop_on_signals(stop):
            os.kill(os.getpid(), signum)
            time.sleep(0.05)
            assert stop.is_set() and seen == []  # a clean stop, no exception
            os.kill(os.getpid(), signum)
            time.sleep(0.05)
            assert seen == [signum]  # the handler from before (the task wrapper's) has it
        assert signal.getsignal(signum) is previous
    finally:
        signal.signal(signum, before)
