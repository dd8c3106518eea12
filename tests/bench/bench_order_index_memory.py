"""How much memory the order-number index costs a worker: every worker keeps the whole index
(`streams/state/topic_views.py`), so it must stay small at a million orders (target: under 200 MB).

    .venv/bin/python tests/bench/bench_order_index_memory.py [ORDERS]

Baseline in the same run: the same keys and ids held in a plain dict built directly, the least
any in-memory index of them can cost in Python.
"""

from __future__ import annotations

import gc
import sys

import orjson
import psutil

from service.planning.links import order_number_key
from service.streams.state.live_views import _order_id
from service.streams.state.topic_views import TopicView


def rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def main(orders: int) -> None:
    keys = [order_number_key(f"tenant-{i % 50:03d}", str(100000 + i)).encode() for i in range(orders)]
    values = [orjson.dumps({"orderId": str(6182665224482 + i)}) for i in range(orders)]
    start = rss()
    view: TopicView[str] = TopicView("order-index", _order_id)
    for key, value in zip(keys, values, strict=True):
        view.apply(key, value)
    service = rss() - start
    del view
    start = rss()
    bare = {k.decode(): orjson.loads(v)["orderId"] for k, v in zip(keys, values, strict=True)}
    baseline = rss() - start
    assert len(bare) == orders
    mib = 2**20
    print(f"{'figure':42} {'service':>12} {'baseline':>12} {'ratio':>6}")
    print(
        f"{f'order-number index, {orders:,} orders':42} {service / mib:>9.0f} MiB {baseline / mib:>9.0f} MiB "
        f"{service / max(baseline, 1):>6.2f}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
