"""Does a slow agent make the *same* event-loop work cost more CPU on this machine? (run on demand, no Kafka, no Faust)

`python bench/loop_spin.py [--items 20000] [--rounds 3]`: an asyncio producer/consumer pair on uvloop doing per item
what Faust's fetch loop and agent did (the producer hands each item over through a mode-style ``wait_first``: four
tasks, ``asyncio.wait``, cancellations; the consumer yields once and takes it from a queue), the consumer then burning
0, 150 or 300 µs of CPU in a pure-Python loop. Prints the CPU per item of everything but the burn (the burn is timed
with the thread's CPU clock and subtracted) and the preempted context switches per item. On an idle machine the
first column stays flat; on a loaded one it rises with the burn: the same work, interrupted more often per item.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

import uvloop


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def preempted() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


async def run(items: int, burn_iterations: int, burnt: list[float]) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=16384)
    events = [asyncio.Event() for _ in range(3)]  # mode's wait_first also waits on suspend/stopped/crashed

    async def put(i: int) -> None:
        queue.put_nowait(i)

    async def producer() -> None:
        for i in range(items):
            tasks = [asyncio.ensure_future(put(i))] + [asyncio.ensure_future(e.wait()) for e in events]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                if not t.done():
                    t.cancel()

    async def consumer() -> None:
        clock = time.thread_time
        for _ in range(items):
            await asyncio.sleep(0)  # Faust's stream iterator yields once per record
            await queue.get()
            if burn_iterations:
                t0 = clock()
                for _ in range(burn_iterations):
                    pass
                burnt[0] += clock() - t0

    await asyncio.gather(producer(), consumer())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    t0 = time.thread_time()
    for _ in range(2_000_000):
        pass
    per_us = 2_000_000 / ((time.thread_time() - t0) * 1e6)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    for rnd in range(args.rounds):
        for burn_us in (0, 150, 300):
            burnt = [0.0]
            c0, x0 = cpu_s(), preempted()
            asyncio.run(run(args.items, int(burn_us * per_us), burnt))
            other = (cpu_s() - c0 - burnt[0]) * 1e6 / args.items
            print(f"round {rnd} burn {burnt[0] * 1e6 / args.items:5.1f} µs/item: the rest {other:5.1f} µs/item, "
                  f"preempted {(preempted() - x0) / args.items:.3f}/item", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
