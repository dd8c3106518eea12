"""The bare baselines, each run as its own process (as the worker is):

python -m tests.bench.bare forward BOOTSTRAP OUT_TOPIC EXPECTED IN_TOPIC...
    consume -> transform (parse, add a field, encode) -> produce, until EXPECTED messages are out;
    prints "ready" once assigned, then the seconds from its first record to the last acknowledgement.
python -m tests.bench.bare post URL BODIES_FILE CONCURRENCY
    POSTs every body (one JSON document per line) with one httpx AsyncClient, CONCURRENCY at once;
    prints the seconds it took.
python -m tests.bench.bare changelog BOOTSTRAP TOPIC
    reads the topic end to end with a group-less consumer; prints the seconds and the count.
"""

from __future__ import annotations

import asyncio
import sys
import time

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition


async def _consumer(bootstrap: str, topics: list[str], **options: object) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **options)  # type: ignore[arg-type]
    await consumer.start()
    await consumer._client.force_metadata_update()
    tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return consumer


async def forward(bootstrap: str, out: str, expected: int, topics: list[str]) -> None:
    consumer = await _consumer(bootstrap, topics)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    print("ready", flush=True)
    sent, first = 0, 0.0
    try:
        while sent < expected:
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            futures = []
            for records in batches.values():
                for record in records:
                    first = first or time.monotonic()
                    doc = orjson.loads(record.value)
                    doc["forwarded"] = True
                    futures.append(await producer.send(out, key=record.key, value=orjson.dumps(doc)))
            await asyncio.gather(*futures)
            sent += len(futures)
        print(f"{time.monotonic() - first:.6f}", flush=True)
    finally:
        await producer.stop()
        await consumer.stop()


async def post(url: str, bodies_file: str, concurrency: int) -> None:
    with open(bodies_file, "rb") as f:
        bodies = [line for line in f.read().splitlines() if line]
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for i, body in enumerate(bodies):
        queue.put_nowait((i, body))

    async with httpx.AsyncClient(timeout=60) as client:

        async def poster() -> None:
            while not queue.empty():
                i, body = queue.get_nowait()
                headers = {"content-type": "application/json", "webhook-id": f"bare-{i}"}
                response = await client.post(url, content=body, headers=headers)
                response.raise_for_status()

        started = time.monotonic()
        await asyncio.gather(*(poster() for _ in range(concurrency)))
        print(f"{time.monotonic() - started:.6f}", flush=True)


async def changelog(bootstrap: str, topic: str) -> None:
    consumer = await _consumer(bootstrap, [topic], max_partition_fetch_bytes=4 * 1024 * 1024)
    started = time.monotonic()
    ends = await consumer.end_offsets(list(consumer.assignment()))
    count = 0
    try:
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=200, max_records=10_000)).values():
                count += len(records)
        print(f"{time.monotonic() - started:.6f} {count}", flush=True)
    finally:
        await consumer.stop()


def main() -> None:
    what, *args = sys.argv[1:]
    if what == "forward":
        asyncio.run(forward(args[0], args[1], int(args[2]), args[3:]))
    elif what == "post":
        asyncio.run(post(args[0], args[1], int(args[2])))
    elif what == "changelog":
        asyncio.run(changelog(args[0], args[1]))
    else:
        raise SystemExit(f"unknown baseline {what}")


if __name__ == "__main__":
    main()
