"""Admission control: a bounded pool of runs across sessions, a first-come queue with places, one
run per session, a bounded queue and wait, settings from the environment."""
import threading
import time

import pytest

from nested_learning.viz.admission import Admission, AdmissionSettings, Busy


def test_at_most_max_running_at_once_and_the_rest_wait_in_order():
    pool = Admission(max_running=2, max_waiting=10)
    active, peak, order, lock = [0], [0], [], threading.Lock()
    release = threading.Event()

    def run(owner):
        with pool.slot(owner, poll_s=0.01):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                order.append(owner)
            release.wait(10)
            with lock:
                active[0] -= 1

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=run, args=(f"s{i}",)))
        threads[-1].start()
        time.sleep(0.05)  # arrive one after another
    assert pool.counts() == (2, 3)
    release.set()
    for thread in threads:
        thread.join(10)
    assert peak[0] == 2 and order[:2] == ["s0", "s1"] and sorted(order[2:]) == ["s2", "s3", "s4"]
    assert pool.counts() == (0, 0)


def test_a_waiting_run_is_told_its_place():
    pool = Admission(max_running=1, max_waiting=10)
    places, release = [], threading.Event()

    def hold():
        with pool.slot("holder"):
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    while pool.counts() != (1, 0):
        time.sleep(0.01)
    threading.Timer(0.2, release.set).start()
    with pool.slot("waiter", on_wait=places.append, poll_s=0.02):
        pass
    holder.join(10)
    assert places and set(places) == {1}


def test_one_run_per_session_a_bounded_queue_and_a_bounded_wait():
    pool = Admission(max_running=1, max_waiting=1)
    with pool.slot("a"):
        with pytest.raises(Busy, match=r"Waited 0.05 s"):  # its own previous run holds the slot: it waits
            with pool.slot("a", wait_limit_s=0.05, poll_s=0.01):
                pass
        with pytest.raises(Busy, match=r"Waited 0.05 s at place 1"):
            with pool.slot("b", wait_limit_s=0.05, poll_s=0.01):
                pass
        assert pool.counts() == (1, 0)  # the one that gave up left the queue
        served = []

        def wait_for_a_slot():
            with pool.slot("c", wait_limit_s=10, poll_s=0.01):
                served.append("c")

        waiting = threading.Thread(target=wait_for_a_slot)
        waiting.start()
        while pool.counts() != (1, 1):
            time.sleep(0.01)
        with pytest.raises(Busy, match=r"server is full \(1 runs running, 1 waiting\)"):
            with pool.slot("d"):
                pass
    waiting.join(5)
    assert served == ["c"]  # served once "a" left


def test_a_session_waits_for_its_previous_run_then_runs():
    """A Run pressed while the session's previous run (one a Reset discarded) finishes its piece waits for
    it, instead of being refused: one slot per session at a time, taken in turn."""
    pool = Admission(max_running=2, max_waiting=4)
    order, first_holds, release = [], threading.Event(), threading.Event()

    def previous():
        with pool.slot("a"):
            first_holds.set()
            release.wait(5)
            order.append("previous")

    thread = threading.Thread(target=previous)
    thread.start()
    first_holds.wait(5)
    def next_run():
        with pool.slot("a", wait_limit_s=10, poll_s=0.01):
            order.append("next")

    later = threading.Thread(target=next_run)
    later.start()
    while pool.counts() != (1, 1):  # waiting, though a second slot is free
        time.sleep(0.01)
    with pytest.raises(Busy, match="still waiting"):  # a third from the same session is refused
        with pool.slot("a"):
            pass
    release.set()
    thread.join(5), later.join(5)
    assert order == ["previous", "next"] and pool.counts() == (0, 0)


def test_an_error_inside_the_slot_frees_it():
    pool = Admission(max_running=1, max_waiting=0)
    with pytest.raises(ZeroDivisionError):
        with pool.slot("a"):
            1 / 0
    with pool.slot("a"):
        assert pool.counts() == (1, 0)


def test_settings_from_the_environment():
    assert AdmissionSettings.from_environment({}) == AdmissionSettings()
    settings = AdmissionSettings.from_environment({"NLE_MAX_RUNNING": "4", "NLE_RUN_DEADLINE_S": "12.5"})
    assert settings.max_running == 4 and settings.run_deadline_s == 12.5
    with pytest.raises(ValueError, match="NLE_MAX_RUNNING='two' is not an integer"):
        AdmissionSettings.from_environment({"NLE_MAX_RUNNING": "two"})
    with pytest.raises(ValueError, match=r"NLE_MAX_WAITING=0 must be in \[1, 10000\]"):
        AdmissionSettings.from_environment({"NLE_MAX_WAITING": "0"})
