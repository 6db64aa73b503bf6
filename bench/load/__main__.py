"""python -m bench.load --base-url http://127.0.0.1:8080 --duration 60 [--users 200]
[--kiosks 20] [--counters 30] [--agents 5] [--database-url postgresql+psycopg://…]
[--create-staff]

Runs the load against a running server and prints the table; with --database-url also
checks the invariants (exit 1 on a violation). --create-staff makes the accounts
(load-agent-NN, load-clerk-NN, role agent) in that database first.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from bench.load import staff
from bench.load.clients import Config
from bench.load.runner import run


def _pair(text: str) -> tuple[float, float]:
    low, high = (float(x) for x in text.split(","))
    return low, high


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--kiosks", type=int, default=20)
    ap.add_argument("--counters", type=int, default=30)
    ap.add_argument("--agents", type=int, default=5)
    ap.add_argument("--database-url", default="", help="check the invariants in it afterwards")
    ap.add_argument("--create-staff", action="store_true", help="make the accounts first")
    ap.add_argument("--password", default=staff.DEFAULT_PASSWORD)
    ap.add_argument("--address-base", default="127.0.10.1")
    ap.add_argument("--think", default="4,12", help="seconds between a resident's messages")
    ap.add_argument("--kiosk-gap", default="1,3", help="seconds between a kiosk's numbers")
    ap.add_argument("--escalate-share", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    agents = staff.agent_accounts(args.agents, args.password)
    clerks = staff.clerk_accounts(args.counters, args.password)
    if args.create_staff:
        if not args.database_url:
            ap.error("--create-staff needs --database-url")
        made = staff.ensure_staff(args.database_url, agents + clerks)
        print(f"staff accounts: {made} made, {len(agents) + len(clerks) - made} existed")
    config = Config(
        think_s=_pair(args.think),
        kiosk_gap_s=_pair(args.kiosk_gap),
        escalate_share=args.escalate_share,
    )
    print(
        f"{args.users} chat users, {args.kiosks} kiosks, {args.counters} counters, "
        f"{args.agents} agents against {args.base_url} for {args.duration:.0f} s",
        flush=True,
    )
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        result = runner.run(
            run(
                args.base_url,
                args.duration,
                args.users,
                args.kiosks,
                args.counters,
                args.agents,
                database_url=args.database_url or None,
                agent_users=agents,
                counter_users=clerks,
                config=config,
                address_base=args.address_base,
                seed=args.seed,
            )
        )
    print(result.report())
    return 1 if result.violations else 0


if __name__ == "__main__":
    sys.exit(main())
