"""Benchmark (not a test): a digest fan-out to N channels through the real runner, outbox and
slack_sdk client, against the fake Slack Web API enforcing one message per second per channel.

    python scripts/bench_fanout.py --channels 500 [--per-channel 2] [--workers 8] [--faults]

Reports the wall time against the rate-limit bound ((per-channel − 1) seconds: the messages
of one channel cannot go faster than one a second), the 429s met, and the lost and duplicated
messages, which must both be 0."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.scheduling.runner import Runner
from tests.bot.delivery_support import runtime_for, write_config
from tests.fakes.slack_api import FakeSlack, Fault

AT = datetime(2026, 12, 1, 8, 30, tzinfo=ZoneInfo("Europe/Paris"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=500)
    parser.add_argument("--per-channel", type=int, default=1, help="digests per channel")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--faults", action="store_true", help="also inject 500s and drops")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    subs = [
        {"id": f"s{c:04d}-{k}", "channel": f"C{c:04d}", "time": "08:30", "days": "mon-sun",
         "kpis": ["revenue"]}
        for k in range(args.per_channel)
        for c in range(args.channels)
    ]  # fmt: skip
    expected = {f"digest:{s['id']}:{AT.date()}" for s in subs}
    with tempfile.TemporaryDirectory() as directory, FakeSlack(per_channel_interval=1.0) as fake:
        config = write_config(
            Path(directory),
            subscriptions=subs,
            scheduling={"workers": args.workers, "sync_cron": "0 0 1 1 *",
                        "evaluation_cron": "0 0 1 1 *", "claim_lease": 60},
            delivery={"backoff_base": 0.05, "backoff_cap": 2.0, "max_retries": 8},
        )  # fmt: skip
        runtime = runtime_for(config, fake)
        if args.faults:
            mix = [Fault.server_error(), Fault.dropped(), Fault.lost_answer()] * 5
            fake.fail("chat.postMessage", *mix)
        runtime.service()  # not part of the fan-out
        started = time.perf_counter()
        outcomes = Runner(runtime).run_due(AT)
        elapsed = time.perf_counter() - started

        posted = Counter(
            ((p.metadata or {}).get("event_payload") or {}).get("idempotency_key")
            for p in fake.posts()
        )
        rate_limited = sum(
            1 for c in fake.calls_to("chat.postMessage") if c.method == "chat.postMessage"
        ) - sum(posted.values())
    lost = len(expected - set(posted))
    duplicated = sum(n - 1 for n in posted.values() if n > 1)
    bound = max(args.per_channel - 1, 0)
    print(f"channels={args.channels} digests={len(subs)} workers={args.workers} "
          f"faults={'on' if args.faults else 'off'}")  # fmt: skip
    print(f"fan-out time: {elapsed:.2f} s  (rate-limit bound {bound} s; "
          f"{len(subs) / elapsed:.0f} messages/s)")  # fmt: skip
    print(f"postMessage calls not resulting in a post (429s, faults): {rate_limited}")
    print(f"job outcomes: {dict(Counter(o.outcome for o in outcomes))}")
    print(f"lost: {lost}  duplicated: {duplicated}")
    return 0 if lost == 0 and duplicated == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
