"""Load generator and invariant checks for the production topology (issue 8).

One asyncio process simulates the hall and the web at once, each client from its own
loopback address (127.0.10.1, 127.0.10.2, …: a per-IP rate limit sees separate clients):

- chat users (residents on the widget): WebSocket /api/chat/ws, a question from the sample
  FAQ every 4–12 s, some ask 转人工 once and then talk to an agent with tagged messages;
  reconnect with backoff and ``?after=`` catch-up; REST fallback with the same client id;
- agents: log in, go online, poll their chats and the queue (claiming), answer each tagged
  resident message with a uniquely marked reply, close the chat with a ticket;
- kiosks: take numbers (POST /api/kiosk/tickets) for random services;
- counters: log in, open a window, call next, serve a moment, finish (or 过号).

Use from a bench script::

    from bench.load import run, staff

    staff.ensure_staff(database_url, staff.agent_accounts(5) + staff.clerk_accounts(30))

    async def faults(load):
        await asyncio.sleep(60)
        t = load.mark("kill api-1")
        kill_api_1()
        await asyncio.sleep(120)
        print(load.metrics.recovery_table(t, label="kill api-1"))

    result = await run("http://127.0.0.1:8080", 300, scenario=faults,
                       database_url=database_url)
    print(result.report())            # table, counts, marks, invariants
    assert not result.violations

or ``python -m bench.load --base-url http://127.0.0.1:8080 --duration 60``.

The server must: open the hall around the clock (``BANSHI_KB_SOURCE_DIR`` at
``staff.open_all_day_kb(dir)``), answer requests for a person at any hour
(``BANSHI_AGENT_HOURS=always``), and know the staff accounts (``staff.ensure_staff``).
"""

from bench.load.clients import Config, Ledger
from bench.load.invariants import Findings, check, examine
from bench.load.metrics import Metrics, Snapshot
from bench.load.runner import Load, LoadResult, run

__all__ = [
    "Config",
    "Findings",
    "Ledger",
    "Load",
    "LoadResult",
    "Metrics",
    "Snapshot",
    "check",
    "examine",
    "run",
]
