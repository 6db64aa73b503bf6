"""Chat turn latency through the whole path: HTTP → API → Rasa (NLU + policies) → custom
action back in the API → knowledge base → reply, with simulated residents chatting at once.

    .venv/bin/python bench/chat_latency.py [--residents 20] [--turns 10] [--think 3] [--no-rasa]

Starts `banshi serve` (API + Rasa with the current trained model) on a throwaway data
directory. Each resident holds one conversation: a greeting, then questions from
bench/data/kb_dev.jsonl, each followed by a follow-up that names no service, then thanks.
Three runs: one resident alone (the bare turn time); the residents at once, each reading
the answer and typing the next message for a random time averaging --think seconds (people
on phones take longer: this is a busy hour); and the residents with no pause at all, which
finds the throughput ceiling (turns/s) rather than what a resident feels.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time

import httpx
from _common import BENCH_DATA, percentile, served

FOLLOW_UPS = ["那要带什么材料？", "要多久能办好？", "在哪个窗口办？", "收费吗？"]


def script(rng: random.Random, questions: list[str], turns: int) -> list[str]:
    out = ["你好"]
    while len(out) < turns - 1:
        out += [rng.choice(questions), rng.choice(FOLLOW_UPS)]
    return [*out[: turns - 1], "谢谢"]


async def resident(
    client: httpx.AsyncClient,
    base: str,
    n: int,
    lines: list[str],
    out: list[tuple[float, bool]],
    think_s: float = 0.0,
) -> None:
    session = f"bench-resident-{n:04d}-{random.getrandbits(40):010x}"
    rng = random.Random(n)
    if think_s:
        await asyncio.sleep(rng.uniform(0, think_s))  # residents do not start in step
    for text in lines:
        if think_s:
            await asyncio.sleep(rng.expovariate(1 / think_s))
        t0 = time.perf_counter()
        r = await client.post(f"{base}/api/chat/messages", json={"session": session, "text": text})
        elapsed = time.perf_counter() - t0
        ok = r.status_code == 200 and bool(r.json()["messages"])
        out.append((elapsed * 1000, ok and not r.json()["degraded"]))


async def run(base: str, residents: int, turns: int, think: float, seed: int) -> None:
    rows = [json.loads(line) for line in (BENCH_DATA / "kb_dev.jsonl").open(encoding="utf-8")]
    questions = [r["question"] for r in rows if r.get("item_id")]
    rng = random.Random(seed)
    async with httpx.AsyncClient(timeout=30) as client:
        # warm-up: first Rasa and encoder calls compile and load lazily
        warm: list[tuple[float, bool]] = []
        await resident(client, base, 9999, script(rng, questions, 6), warm)
        runs = [(1, 0.0, "alone"), (residents, think, "typing"), (residents, 0.0, "no pause")]
        for concurrency, think_s, label in runs:
            results: list[tuple[float, bool]] = []
            t0 = time.perf_counter()
            await asyncio.gather(
                *(
                    resident(client, base, i, script(rng, questions, turns), results, think_s)
                    for i in range(concurrency)
                )
            )
            wall = time.perf_counter() - t0
            ms = [m for m, _ in results]
            failed = sum(not ok for _, ok in results)
            print(
                f"{concurrency:>3} residents, {label:<8} ({think_s:.0f} s): {len(ms)} turns, "
                f"{len(ms) / wall:.1f} turns/s   p50 {percentile(ms, 50):.0f} ms   "
                f"p95 {percentile(ms, 95):.0f} ms   p99 {percentile(ms, 99):.0f} ms   "
                f"max {max(ms):.0f} ms   failed or degraded {failed}"
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--residents", type=int, default=20)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--think", type=float, default=3.0, help="mean seconds between turns")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--no-rasa", action="store_true", help="the direct path (Rasa down)")
    args = ap.parse_args()
    with served(with_rasa=not args.no_rasa) as base:
        print(f"server {base}  ({'without' if args.no_rasa else 'with'} Rasa), goal p95 < 300 ms")
        asyncio.run(run(base, args.residents, args.turns, args.think, args.seed))


if __name__ == "__main__":
    main()
