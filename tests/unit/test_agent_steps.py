"""An agent step (streams.bulk): the batch messages Faust hands over together, grouped by
partition, and each partition's database current while its records are read or written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import faust.streams

from streams.bulk import STEP_MAX_BATCHES, STEP_WAIT, PartitionStep, partition_steps


@dataclass(eq=False)  # Faust keeps a weak reference to the current event
class Message:
    partition: int
    offset: int


@dataclass(eq=False)
class BatchEvent:
    """A batch message as Faust delivers it: its value is the fetched records."""

    message: Message
    value: list[str]


class Stream:
    """Faust's stream as the agents use it: ``take_events`` yields what was queued together."""

    def __init__(self, takes: list[list[BatchEvent]]) -> None:
        self.takes = takes
        self.asked: list[tuple[int, float]] = []

    async def take_events(self, max_: int, within: float) -> AsyncIterator[list[BatchEvent]]:
        self.asked.append((max_, within))
        for events in self.takes:
            yield events


def batch(partition: int, offset: int, *records: str) -> BatchEvent:
    return BatchEvent(Message(partition, offset), list(records))


def steps_of(stream: Stream) -> list[list[PartitionStep]]:
    async def gather() -> list[list[PartitionStep]]:
        return [steps async for steps in partition_steps(stream)]

    return asyncio.run(gather())


def test_a_step_groups_the_batches_taken_together_by_partition_in_their_order() -> None:
    first = [batch(0, 10, "a", "b"), batch(1, 4, "x"), batch(0, 12, "c"), batch(2, 7, "p", "q")]
    second = [batch(1, 5, "y")]
    stream = Stream([first, second])

    steps = steps_of(stream)

    assert stream.asked == [(STEP_MAX_BATCHES, STEP_WAIT)]
    # The partitions' order in a step does not matter; each partition's records keep theirs.
    assert [sorted((step.partition, step.records) for step in taken) for taken in steps] == [
        [(0, ["a", "b", "c"]), (1, ["x"]), (2, ["p", "q"])],
        [(1, ["y"])],
    ]
    partition_0 = next(step for step in steps[0] if step.partition == 0)
    assert [event.message.offset for event in partition_0.events] == [10, 12]


def test_reads_and_writes_inside_a_partition_go_to_that_partitions_database() -> None:
    # Faust's rocksdb store picks the partition's database from the current event; take_events
    # does not set it in the agent's task, so each partition's work must.
    steps = steps_of(Stream([[batch(3, 1, "a"), batch(1, 2, "b"), batch(3, 5, "c")]]))[0]
    assert faust.streams.current_event() is None
    for step in steps:
        with step.current():
            current = faust.streams.current_event()
            assert current is step.events[-1] and current.message.partition == step.partition
        assert faust.streams.current_event() is None  # nothing leaks into the next partition
