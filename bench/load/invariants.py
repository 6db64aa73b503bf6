"""What must hold after a load run, faults included, checked against the database.

- Queue numbers: per service and day the sequences are exactly 1..N (none repeated, none
  skipped), each number is its service letter and sequence (A012), and the day's counter
  (queue_days.last_seq) equals N: a number counted but never stored is a skipped one too.
- Every ticket a kiosk was given exists with that number and service; no number was given
  to two kiosks; no number was called at two windows; every call exists, and a finish or
  过号 that was acknowledged is stored as done / no_show.
- Every chat message the server answered is stored once in its resident's conversation with
  the text sent (cut to the chat limit), and the bot's answer the resident saw is stored.
- Every agent reply that was acknowledged is stored once in the chat's conversation and
  reached that resident's widget (live or on reconnecting), and no other resident's.

:func:`check` returns the violations as English sentences (empty: all good);
:func:`examine` also returns notes: things worth saying that break no promise (a message
stored although its sender never heard back, replies that only arrived on reconnecting).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import func, select

from bench.load.clients import AGENT_MARK, Ledger

T = TypeVar("T")
CHUNK = 500
MAX_PER_RULE = 20  # violations listed per rule; the rest are counted in one sentence


@dataclass
class Findings:
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # what was looked at, how many

    def summary(self) -> str:
        seen = ", ".join(f"{k} {v}" for k, v in self.checked.items())
        verdict = (
            "all invariants hold"
            if not self.violations
            else (f"{len(self.violations)} violation(s)")
        )
        return f"{verdict} (checked: {seen})"


class _Rule:
    """Collects one rule's violations, listing the first few and counting the rest."""

    def __init__(self, findings: Findings, name: str) -> None:
        self.findings, self.name, self.count = findings, name, 0

    def __call__(self, sentence: str) -> None:
        self.count += 1
        if self.count <= MAX_PER_RULE:
            self.findings.violations.append(sentence)

    def close(self) -> None:
        if self.count > MAX_PER_RULE:
            self.findings.violations.append(
                f"… and {self.count - MAX_PER_RULE} more violations of the same kind ({self.name})."
            )


def check(database_url: str, ledger: Ledger, chat_max_chars: int = 300) -> list[str]:
    return examine(database_url, ledger, chat_max_chars).violations


def examine(database_url: str, ledger: Ledger, chat_max_chars: int = 300) -> Findings:
    """All checks (blocking: run it in a thread from async code)."""
    from banshi.db import Database

    findings = Findings()
    db = Database(database_url)
    try:
        with db.session() as s:
            _queue_numbers(s, findings)
            _tickets(s, ledger, findings)
            _calls(s, ledger, findings)
            _chat_messages(s, ledger, findings, chat_max_chars)
            _agent_replies(s, ledger, findings)
    finally:
        db.dispose()
    return findings


def _chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _ranges(numbers: list[int]) -> str:
    """[3, 4, 5, 9] → "3–5, 9" """
    out: list[str] = []
    for n in sorted(numbers):
        if out and out[-1].split("–")[-1] == str(n - 1):
            out[-1] = out[-1].split("–")[0] + f"–{n}"
        else:
            out.append(str(n))
    shown = ", ".join(out[:10])
    return shown + (f" (and {len(out) - 10} more ranges)" if len(out) > 10 else "")


# -- the queue --------------------------------------------------------------------------------
def _queue_numbers(s: Any, findings: Findings) -> None:
    from kiosk.queue.models import QueueDay, QueueTicket

    rows = s.execute(
        select(QueueTicket.day, QueueTicket.service, QueueTicket.seq, QueueTicket.number)
    ).all()
    by: dict[tuple[Any, str], list[int]] = defaultdict(list)
    rule = _Rule(findings, "queue numbering")
    for day, service, seq, number in rows:
        by[(day, service)].append(seq)
        if number != f"{service}{seq:03d}":
            rule(f"Ticket {number} on {day} has sequence {seq} of service {service}.")
    counted = {(d.day, d.service): d.last_seq for d in s.scalars(select(QueueDay)).all()}
    for (day, service), seqs in sorted(by.items()):
        repeated = sorted(n for n, c in Counter(seqs).items() if c > 1)
        if repeated:
            rule(
                f"Service {service} on {day}: sequence number(s) {_ranges(repeated)} were "
                "issued more than once."
            )
        top = max(max(seqs), counted.get((day, service), 0))
        missing = sorted(set(range(1, top + 1)) - set(seqs))
        if missing:
            rule(
                f"Service {service} on {day}: number(s) {_ranges(missing)} were skipped "
                f"(the day's counter is at {counted.get((day, service), 0)}, "
                f"{len(set(seqs))} tickets stored)."
            )
    for (day, service), last in counted.items():
        if last and (day, service) not in by:
            rule(f"Service {service} on {day}: the counter is at {last} but no ticket is stored.")
    rule.close()
    findings.checked["queue tickets"] = len(rows)


def _tickets(s: Any, ledger: Ledger, findings: Findings) -> None:
    from kiosk.queue.models import QueueTicket

    rule = _Rule(findings, "acknowledged tickets")
    given: dict[tuple[Any, str], list[str]] = defaultdict(list)
    for t in ledger.tickets:
        given[(t.day, t.number)].append(t.kiosk)
    for (day, number), kiosks in sorted(given.items()):
        if len(kiosks) > 1:
            rule(f"Number {number} of {day} was given to {len(kiosks)} residents ({kiosks}).")
    stored: dict[str, tuple[str, str, Any]] = {}
    tokens = [t.token for t in ledger.tickets]
    for batch in _chunks(tokens):
        for token, number, service, day in s.execute(
            select(
                QueueTicket.token, QueueTicket.number, QueueTicket.service, QueueTicket.day
            ).where(QueueTicket.token.in_(batch))
        ).all():
            stored[token] = (number, service, day)
    for t in ledger.tickets:
        got = stored.get(t.token)
        at = f"{ledger.rel(t.at):+.1f} s"
        if got is None:
            rule(f"Ticket {t.number} given to kiosk {t.kiosk} at {at} is not in the database.")
        elif got != (t.number, t.service, t.day):
            rule(
                f"Ticket {t.number} ({t.service}, {t.day}) given at {at} is stored as "
                f"{got[0]} ({got[1]}, {got[2]})."
            )
    rule.close()
    findings.checked["acknowledged tickets"] = len(ledger.tickets)


def _calls(s: Any, ledger: Ledger, findings: Findings) -> None:
    from kiosk.queue.models import QueueTicket

    rule = _Rule(findings, "counter calls")
    windows: dict[tuple[Any, str], set[str]] = defaultdict(set)
    for c in ledger.calls:
        windows[(c.day, c.number)].add(c.window)
    for (day, number), where in sorted(windows.items()):
        if len(where) > 1:
            rule(f"Number {number} of {day} was called at {len(where)} windows ({sorted(where)}).")
    days = {c.day for c in ledger.calls}
    stored: dict[tuple[Any, str], tuple[str, str | None]] = {}
    for day in days:
        for number, status, window in s.execute(
            select(QueueTicket.number, QueueTicket.status, QueueTicket.window).where(
                QueueTicket.day == day
            )
        ).all():
            stored[(day, number)] = (status, window)
    for c in ledger.calls:
        got = stored.get((c.day, c.number))
        at = f"{ledger.rel(c.at):+.1f} s"
        if got is None:
            rule(f"Number {c.number} called at {c.window} at {at} is not in the database.")
            continue
        status, window = got
        if window != c.window and len(windows[(c.day, c.number)]) == 1:
            rule(f"Number {c.number} was called at {c.window} at {at}; stored at {window}.")
        if c.outcome and status != c.outcome:
            rule(
                f"Number {c.number} was acknowledged as {c.outcome} at {c.window} "
                f"(called at {at}) but is stored as {status}."
            )
    rule.close()
    findings.checked["acknowledged calls"] = len(ledger.calls)


# -- the chat ---------------------------------------------------------------------------------
def _conversations(s: Any, sessions: Iterable[str]) -> dict[str, str]:
    from assistant.models import Conversation

    out: dict[str, str] = {}
    for batch in _chunks(sorted(set(sessions))):
        for conv_id, key in s.execute(
            select(Conversation.id, Conversation.user_key).where(
                Conversation.channel == "web", Conversation.user_key.in_(batch)
            )
        ).all():
            out[key] = conv_id
    return out


def _chat_messages(s: Any, ledger: Ledger, findings: Findings, max_chars: int) -> None:
    from assistant.models import ChatMessage

    rule = _Rule(findings, "chat messages")
    convs = _conversations(s, [a.session for a in ledger.chat_acks])
    inbound: dict[tuple[str, str], list[tuple[int, str, str, str]]] = defaultdict(list)
    answered: set[int] = set()
    for batch in _chunks(sorted(set(convs.values()))):
        for mid, conv, ext, text, direction, author in s.execute(
            select(
                ChatMessage.id,
                ChatMessage.conversation_id,
                ChatMessage.external_id,
                ChatMessage.text,
                ChatMessage.direction,
                ChatMessage.author,
            ).where(ChatMessage.conversation_id.in_(batch), ChatMessage.external_id.is_not(None))
        ).all():
            inbound[(conv, ext)].append((mid, text, direction, author))
        answered.update(
            s.scalars(
                select(ChatMessage.reply_to)
                .where(
                    ChatMessage.conversation_id.in_(batch),
                    ChatMessage.direction == "out",
                    ChatMessage.reply_to.is_not(None),
                )
                .group_by(ChatMessage.reply_to)
            ).all()
        )
    for a in ledger.chat_acks:
        at = f"{ledger.rel(a.acked_at):+.1f} s"
        conv = convs.get(a.session)
        if conv is None:
            rule(f"Resident {a.session} was answered at {at} but has no conversation stored.")
            continue
        if a.conversation and a.conversation != conv:
            rule(
                f"Resident {a.session} was answered in conversation {a.conversation} at {at}; "
                f"the database has {conv}."
            )
        rows = inbound.get((conv, a.client_id), [])
        if not rows:
            rule(
                f"Message {a.client_id} of {a.session} ({a.text[:30]!r}), answered over "
                f"{a.via} at {at}, is not stored."
            )
            continue
        if len(rows) > 1:
            rule(f"Message {a.client_id} of {a.session} is stored {len(rows)} times.")
        mid, text, direction, author = rows[0]
        want = a.text.strip()[:max_chars]
        if (direction, author) != ("in", "resident") or text != want:
            rule(
                f"Message {a.client_id} of {a.session} is stored as {direction}/{author} "
                f"{text[:30]!r}, not as the resident's {want[:30]!r}."
            )
        if a.bot_messages and mid not in answered:
            rule(
                f"The bot's answer to message {a.client_id} of {a.session} (seen by the "
                f"resident at {at}) is not stored."
            )
    rule.close()
    findings.checked["acknowledged chat messages"] = len(ledger.chat_acks)
    # sent, never answered, yet stored: no promise broken, but worth knowing
    unacked = [(convs.get(sess), cid) for sess, cid, _ in ledger.chat_unacked]
    if unacked:
        more = _conversations(s, [sess for sess, _, _ in ledger.chat_unacked])
        stored = 0
        for sess, cid, _ in ledger.chat_unacked:
            conv = more.get(sess)
            if conv and s.scalar(
                select(func.count())
                .select_from(ChatMessage)
                .where(ChatMessage.conversation_id == conv, ChatMessage.external_id == cid)
            ):
                stored += 1
        findings.notes.append(
            f"{len(unacked)} chat messages were never answered within the give-up time; "
            f"{stored} of them are stored nonetheless."
        )


def _agent_replies(s: Any, ledger: Ledger, findings: Findings) -> None:
    from assistant.models import ChatMessage

    rule = _Rule(findings, "agent replies")
    replies = ledger.agent_replies
    stored: dict[str, list[tuple[str, int]]] = defaultdict(list)
    conv_ids = sorted({r.conversation for r in replies.values()})
    for batch in _chunks(conv_ids):
        for mid, conv, text in s.execute(
            select(ChatMessage.id, ChatMessage.conversation_id, ChatMessage.text).where(
                ChatMessage.conversation_id.in_(batch), ChatMessage.author == "agent"
            )
        ).all():
            for marker in AGENT_MARK.findall(text):
                stored[marker].append((conv, mid))
    session_conv = dict(ledger.sessions)
    session_conv.update(
        _conversations(s, {d.session for ds in ledger.deliveries.values() for d in ds})
    )
    # chats of this run's residents; an agent may also be given a chat left waiting by an
    # earlier run (its resident long gone): those replies cannot be delivered
    ours = set(_conversations(s, ledger.residents).values()) | set(ledger.sessions.values())
    acked = [r for r in ledger.acked_replies() if r.conversation in ours]
    foreign = len(ledger.acked_replies()) - len(acked)
    if foreign:
        findings.notes.append(
            f"{foreign} agent replies went to chats left waiting from before this run "
            "(not checked for delivery)."
        )
    catch_up = 0
    for r in acked:
        at = f"{ledger.rel(r.acked_at or r.sent_at):+.1f} s"
        rows = stored.get(r.marker, [])
        if not rows:
            rule(
                f"Agent {r.agent}'s reply {r.marker} in chat {r.chat_id}, acknowledged at {at}, "
                "is not stored."
            )
        elif len(rows) > 1:
            rule(f"Agent {r.agent}'s reply {r.marker} is stored {len(rows)} times.")
        elif rows[0][0] != r.conversation:
            rule(f"Agent {r.agent}'s reply {r.marker} is stored in another conversation.")
        got = ledger.deliveries.get(r.marker, [])
        mine = [d for d in got if session_conv.get(d.session) == r.conversation]
        others = sorted({d.session for d in got if session_conv.get(d.session) != r.conversation})
        if not mine:
            rule(
                f"Agent {r.agent}'s reply {r.marker} in chat {r.chat_id}, acknowledged at {at}, "
                "never reached the resident's widget."
            )
        elif all(d.catch_up for d in mine):
            catch_up += 1
        if others:
            rule(f"Agent {r.agent}'s reply {r.marker} reached other residents: {others[:3]}.")
    rule.close()
    findings.checked["acknowledged agent replies"] = len(acked)
    if catch_up:
        findings.notes.append(
            f"{catch_up} agent replies reached their resident only on reconnecting (catch-up)."
        )
    failed = [r for r in replies.values() if r.acked_at is None]
    if failed:
        kept = sum(1 for r in failed if stored.get(r.marker))
        findings.notes.append(
            f"{len(failed)} agent replies were not acknowledged (the POST failed); "
            f"{kept} of them are stored and shown to the resident nonetheless."
        )
    if ledger.unknown_markers:
        findings.notes.append(
            f"{len(ledger.unknown_markers)} agent messages reached a widget with a marker no "
            "agent of this run sent."
        )
