"""gateway.lazy.cached_property: computed once per instance, and never a lock shared
by all instances (3.11's functools version made the event loop wait on a worker
thread's parse of another message)."""

from __future__ import annotations

import threading

from gateway.lazy import cached_property


class Box:
    def __init__(self, name: str, gate: threading.Event | None = None) -> None:
        self.name = name
        self.gate = gate
        self.calls = 0

    @cached_property
    def value(self) -> str:
        """The doc of value."""
        self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(10)
        return self.name.upper()


def test_computed_once_per_instance_and_kept():
    box = Box("a")
    assert box.value == "A"
    assert box.value == "A"
    assert box.calls == 1
    assert vars(box)["value"] == "A"
    assert Box("b").value == "B"


def test_the_class_attribute_is_the_descriptor_with_its_doc():
    assert isinstance(Box.value, cached_property)
    assert Box.value.__doc__ == "The doc of value."


def test_one_instance_computing_in_a_thread_does_not_hold_up_another():
    gate = threading.Event()
    slow = Box("slow", gate)
    worker = threading.Thread(target=lambda: slow.value)
    worker.start()
    try:
        done = threading.Event()
        other = threading.Thread(target=lambda: (Box("fast").value, done.set()))
        other.start()
        # with functools.cached_property on 3.11 this waits for the gate (one lock for
        # every instance); here the other instance is computed at once
        assert done.wait(5), "another instance's value waited for the slow one"
        other.join(5)
    finally:
        gate.set()
        worker.join(10)
    assert slow.value == "SLOW"
