"""Publish one JSON event to a topic of the local service, keyed by its id field (for trying it out).

python deploy/local/publish.py recipes deploy/local/demo-recipe.json
python deploy/local/publish.py orders deploy/local/demo-order.json
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from service.catalog import load_catalog
from service.kafka_admin import client_options
from service.settings import get_settings

KEY_FIELDS = {"recipes": "recipeId", "orders": "orderId", "integrations": "id"}


async def publish(topic: str, path: Path, raw: bytes) -> None:
    settings = get_settings()
    name = load_catalog(settings.topic_catalog, settings.topic_prefix, settings.replication_factor)[topic].name
    key = str(orjson.loads(raw)[KEY_FIELDS[topic]]).encode()
    producer = AIOKafkaProducer(**client_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(name, raw, key=key)
    finally:
        await producer.stop()
    print(f"published {path} to {name} with key {key.decode()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("topic", choices=sorted(KEY_FIELDS))
    parser.add_argument("file", type=Path)
    args = parser.parse_args()
    if not args.file.is_file():
        parser.error(f"{args.file} is not a file")
    try:
        asyncio.run(publish(args.topic, args.file, args.file.read_bytes()))
    except (orjson.JSONDecodeError, KeyError) as exc:
        parser.error(f"{args.file} is not an event with a {KEY_FIELDS[args.topic]} field ({exc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
