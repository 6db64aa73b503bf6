"""ivr.yml: the voice hotline's menu as data — every prompt (an id, its Chinese text), every
step of a call (a key menu, a recording, a number keyed in, a spoken question, a transfer,
a hang-up), where each key goes, timeouts and recording limits — so a centre changes what
callers hear and press without touching code.

The file is checked whole before a call is taken: a target that is no step, a key no phone
has, a duplicated id, an unknown placeholder or an over-long recording is refused with the
field named (``ivr.yml menu.main.keys.5: goes to 'nowhere', which is not a menu``), so a
typo shows at start-up, not in the middle of a caller's message. Actions (``create_ticket``,
``lookup_ticket``…) are names here; the call engine does them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, TypeGuard

import yaml

from banshi.errors import BanshiError

KEYS = "0123456789*#"
END_KEYS = "#*"
REPEAT = "repeat"  # a target: this step again, its prompts replayed
ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")  # prompt ids name files: prompts/<id>.wav
MAX_TIMEOUT_S = 60
MAX_RECORD_S = 300
MAX_SPEECH_S = 60
MAX_ATTEMPTS = 10
MAX_DIGITS = 20

PLACEHOLDERS = {
    "centre": "the centre's name",
    "hotline": "the hotline number",
    "phone": "the centre's telephone",
    "hours": "the opening hours in words",
    "next_open": "when staff are next in, e.g. 明天（周一）上午9:00",
    "number": "a 受理号, spelled out digit by digit",
    "status": "a ticket's progress",
    "answer": "the knowledge base's answer",
    "question": "the question as heard",
    "seconds": "the step's recording limit",
}
ACTIONS = {
    "answer_question": "the heard question through the chat's knowledge-base path",
    "create_ticket": "a ticket with the recording and the caller's number",
    "play_recording": "the caller's recording played back",
    "lookup_ticket": "the keyed-in 受理号 looked up for {status}",
}


class IvrConfigInvalid(BanshiError):
    """ivr.yml is wrong: the file and the field are named; the voice service does not start
    on it."""

    code = "ivr_config_invalid"

    def __init__(self, field: str, problem: str, source: str = "ivr.yml") -> None:
        super().__init__(
            "语音热线菜单配置有误，请联系管理员。", f"{source} {field}: {problem}", field=field
        )
        self.field = field
        self.problem = problem


class NodeKind(StrEnum):
    MENU = "menu"
    RECORD = "record"
    VOICEMAIL = "voicemail"
    COLLECT_DIGITS = "collect_digits"
    ASK = "ask"
    TRANSFER = "transfer"
    HANGUP = "hangup"


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    placeholders: frozenset[str] = frozenset()

    def fill(self, **values: object) -> str:
        missing = self.placeholders - values.keys()
        if missing:
            raise ValueError(f"prompt {self.id!r} needs {', '.join(sorted(missing))}")
        return self.text.format_map({k: str(v) for k, v in values.items()})


@dataclass(frozen=True)
class Route:
    """Where a key (or the end of a step) leads: a step, perhaps another one out of opening
    hours, after an optional action and prompts."""

    in_hours: str
    out_of_hours: str
    action: str | None = None
    prompt: tuple[str, ...] = ()

    def goto(self, open_now: bool) -> str:
        return self.in_hours if open_now else self.out_of_hours


@dataclass(frozen=True, kw_only=True)
class Node:
    kind: ClassVar[NodeKind]
    id: str
    prompt: tuple[str, ...]  # prompt ids, played in order on entering the step


@dataclass(frozen=True, kw_only=True)
class MenuNode(Node):
    kind: ClassVar[NodeKind] = NodeKind.MENU
    keys: Mapping[str, Route]
    timeout_s: float
    # spoken choices when speech is on: a word → the key it stands for (人工 → 1); the
    # recogniser listens for these words only (a restricted grammar)
    words: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RecordNode(Node):
    """A recording the caller can confirm, replay or redo (``next`` is that menu)."""

    kind: ClassVar[NodeKind] = NodeKind.RECORD
    max_record_s: int
    end_key: str
    next: Route


@dataclass(frozen=True, kw_only=True)
class VoicemailNode(Node):
    """A message recorded and acted on (a ticket) at once."""

    kind: ClassVar[NodeKind] = NodeKind.VOICEMAIL
    max_record_s: int
    end_key: str
    action: str
    next: Route


@dataclass(frozen=True, kw_only=True)
class CollectDigitsNode(Node):
    kind: ClassVar[NodeKind] = NodeKind.COLLECT_DIGITS
    length: int
    end_key: str
    timeout_s: float  # between key presses
    next: Route


@dataclass(frozen=True, kw_only=True)
class AskNode(Node):
    """A spoken question; ``unavailable`` is taken when speech recognition is off."""

    kind: ClassVar[NodeKind] = NodeKind.ASK
    max_speech_s: int
    end_key: str
    timeout_s: float  # before the caller starts speaking
    action: str
    next: Route
    unavailable: Route


@dataclass(frozen=True, kw_only=True)
class TransferNode(Node):
    kind: ClassVar[NodeKind] = NodeKind.TRANSFER
    queue: str  # the agents' queue as the PBX names it
    fallback: Route  # nobody free, or the transfer failed


@dataclass(frozen=True, kw_only=True)
class HangupNode(Node):
    kind: ClassVar[NodeKind] = NodeKind.HANGUP


AnyNode = (
    MenuNode | RecordNode | VoicemailNode | CollectDigitsNode | AskNode | TransferNode | HangupNode
)


@dataclass(frozen=True)
class Defaults:
    """Re-prompting: after ``timeout_s`` without a key, ``no_input`` then the step's prompts
    again; after a wrong key, ``invalid``; the ``max_attempts``-th in a row goes to
    ``give_up`` (a hang-up step with a polite goodbye)."""

    no_input: str
    invalid: str
    give_up: str
    timeout_s: float = 5.0
    max_attempts: int = 3


@dataclass(frozen=True)
class IvrConfig:
    prompts: Mapping[str, Prompt]
    nodes: Mapping[str, AnyNode]
    welcome_in_hours: tuple[str, ...]
    welcome_out_of_hours: tuple[str, ...]
    start: str
    defaults: Defaults
    prompts_dir: Path | None = None

    def welcome(self, open_now: bool) -> tuple[str, ...]:
        return self.welcome_in_hours if open_now else self.welcome_out_of_hours

    def node(self, node_id: str) -> AnyNode:
        return self.nodes[node_id]

    def prompt_text(self, prompt_id: str, **values: object) -> str:
        """The prompt's text with its placeholders filled: ``prompt_text("give_up",
        hotline="12345")``. A placeholder without a value is a ValueError."""
        return self.prompts[prompt_id].fill(**values)

    def recorded_prompt(self, prompt_id: str) -> Path | None:
        """``prompts/<id>.wav`` when the centre recorded this prompt (played instead of TTS)."""
        if self.prompts_dir is None or prompt_id not in self.prompts:
            return None
        path = self.prompts_dir / f"{prompt_id}.wav"
        return path if path.is_file() else None

    @classmethod
    def load(cls, path: Path) -> IvrConfig:
        source = path.name
        try:
            text = path.read_text(encoding="utf-8")
            tree = yaml.compose(text, Loader=yaml.SafeLoader)
            _check_unique_keys(tree, "", source)
            data = yaml.safe_load(text)
        except FileNotFoundError as exc:
            raise IvrConfigInvalid("(file)", f"{path} not found", source) from exc
        except yaml.YAMLError as exc:
            raise IvrConfigInvalid("(file)", f"not valid YAML: {exc}", source) from exc
        return cls.parse(data, path.parent, source)

    @classmethod
    def parse(cls, data: Any, base_dir: Path | None = None, source: str = "ivr.yml") -> IvrConfig:
        top = _Section("(file)", data, _TOP_FIELDS, source, where_prefix="")
        refs = _Refs(source)
        prompts = _prompts(top.section("prompts", None), source)
        defaults = _defaults(top.section("defaults", _DEFAULT_FIELDS), refs)
        welcome = top.section("welcome", {"in_hours", "out_of_hours"})
        welcome_in = welcome.prompt_ids("in_hours", refs)
        welcome_out = welcome.prompt_ids("out_of_hours", refs)
        nodes = _nodes(top.section("menu", None), defaults, refs, source)
        start = top.text("start", "main")
        refs.node("start", start)
        refs.check(prompts, nodes)
        _check_give_up(nodes, defaults, source)
        prompts_dir = top.text("prompts_dir", "prompts")
        return cls(
            prompts=prompts,
            nodes=nodes,
            welcome_in_hours=welcome_in,
            welcome_out_of_hours=welcome_out,
            start=start,
            defaults=defaults,
            prompts_dir=(base_dir / prompts_dir) if base_dir is not None else None,
        )


_TOP_FIELDS = {"prompts_dir", "defaults", "welcome", "start", "prompts", "menu"}
_DEFAULT_FIELDS = {"no_input", "invalid", "give_up", "timeout_s", "max_attempts"}
_NODE_FIELDS = {
    NodeKind.MENU: {"prompt", "keys", "timeout_s", "words"},
    NodeKind.RECORD: {"prompt", "max_record_s", "end_key", "next"},
    NodeKind.VOICEMAIL: {"prompt", "max_record_s", "end_key", "action", "next"},
    NodeKind.COLLECT_DIGITS: {"prompt", "length", "end_key", "timeout_s", "next"},
    NodeKind.ASK: {
        "prompt",
        "max_speech_s",
        "end_key",
        "timeout_s",
        "action",
        "next",
        "unavailable",
    },
    NodeKind.TRANSFER: {"prompt", "queue", "fallback"},
    NodeKind.HANGUP: {"prompt"},
}
_ROUTE_FIELDS = {"goto", "in_hours", "out_of_hours", "action", "prompt"}


class _Refs:
    """Prompt ids and targets named while reading, checked once everything is read."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._prompts: list[tuple[str, str]] = []
        self._nodes: list[tuple[str, str]] = []

    def prompt(self, where: str, prompt_id: str) -> None:
        self._prompts.append((where, prompt_id))

    def node(self, where: str, node_id: str) -> None:
        self._nodes.append((where, node_id))

    def check(self, prompts: Mapping[str, Prompt], nodes: Mapping[str, AnyNode]) -> None:
        for where, prompt_id in self._prompts:
            if prompt_id not in prompts:
                raise IvrConfigInvalid(where, f"{prompt_id!r} is not in prompts:", self.source)
        for where, node_id in self._nodes:
            if node_id not in nodes and node_id != REPEAT:
                known = ", ".join([*nodes, REPEAT])
                raise IvrConfigInvalid(
                    where, f"goes to {node_id!r}, which is not a menu (known: {known})", self.source
                )


class _Section:
    """One mapping of ivr.yml being read; every error names ``where.field``."""

    def __init__(
        self,
        where: str,
        raw: Any,
        known: Iterable[str] | None,
        source: str,
        where_prefix: str | None = None,
    ) -> None:
        self.where = where
        self.prefix = f"{where}." if where_prefix is None else where_prefix
        self.source = source
        if not isinstance(raw, dict):
            raise IvrConfigInvalid(where, "must be a mapping", source)
        self.raw: dict[Any, Any] = raw
        allowed = set(known) if known is not None else None
        for key in raw:
            if allowed is not None and key not in allowed:
                raise self.error(str(key), f"unknown field (known: {', '.join(sorted(allowed))})")

    def error(self, key: str, problem: str) -> IvrConfigInvalid:
        return IvrConfigInvalid(f"{self.prefix}{key}", problem, self.source)

    def required(self, key: str) -> Any:
        if key not in self.raw or self.raw[key] is None:
            raise self.error(key, "is missing")
        return self.raw[key]

    def section(self, key: str, known: Iterable[str] | None) -> _Section:
        return _Section(f"{self.prefix}{key}", self.required(key), known, self.source)

    def text(self, key: str, default: str | None = None) -> str:
        value = self.raw.get(key, default) if default is not None else self.required(key)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty text, not {value!r}")
        return value.strip()

    def number(self, key: str, default: float | None, high: float, whole: bool = False) -> float:
        value = self.raw.get(key, default) if default is not None else self.required(key)
        if not _is_number(value, whole) or not 0 < value <= high:
            what = "a whole number" if whole else "a number"
            raise self.error(key, f"must be {what} above 0 and at most {high:g}, not {value!r}")
        return value

    def end_key(self) -> str:
        key = str(self.raw.get("end_key", "#"))
        if key not in END_KEYS:
            raise self.error("end_key", f"must be # or *, not {key!r}")
        return key

    def action(self, default: str | None = None) -> str:
        name = self.text("action", default)
        if name not in ACTIONS:
            raise self.error("action", f"{name!r} is not an action (known: {', '.join(ACTIONS)})")
        return name

    def prompt_ids(self, key: str, refs: _Refs) -> tuple[str, ...]:
        return _prompt_ids(f"{self.prefix}{key}", self.required(key), refs)

    def route(self, key: str, refs: _Refs) -> Route:
        return _route(f"{self.prefix}{key}", self.required(key), refs)


def _is_number(value: Any, whole: bool) -> TypeGuard[float]:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (not whole and isinstance(value, float))


def _prompt_ids(where: str, raw: Any, refs: _Refs) -> tuple[str, ...]:
    ids = [raw] if isinstance(raw, str) else raw
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise IvrConfigInvalid(where, "must be a prompt id or a list of them", refs.source)
    for i, prompt_id in enumerate(ids):
        refs.prompt(where if isinstance(raw, str) else f"{where}[{i}]", prompt_id)
    return tuple(ids)


def _route(where: str, raw: Any, refs: _Refs) -> Route:
    if isinstance(raw, str):
        refs.node(where, raw)
        return Route(raw, raw)
    s = _Section(where, raw, _ROUTE_FIELDS, refs.source)
    split = "in_hours" in raw or "out_of_hours" in raw
    if split == ("goto" in raw):
        raise IvrConfigInvalid(
            where, "needs goto: or both in_hours: and out_of_hours:, not both", refs.source
        )
    if split:
        in_hours, out_of_hours = s.text("in_hours"), s.text("out_of_hours")
        refs.node(f"{where}.in_hours", in_hours)
        refs.node(f"{where}.out_of_hours", out_of_hours)
    else:
        in_hours = out_of_hours = s.text("goto")
        refs.node(f"{where}.goto", in_hours)
    action = s.action() if "action" in raw else None
    prompt = s.prompt_ids("prompt", refs) if "prompt" in raw else ()
    return Route(in_hours, out_of_hours, action, prompt)


def _prompts(s: _Section, source: str) -> dict[str, Prompt]:
    if not s.raw:
        raise IvrConfigInvalid("prompts", "must list the prompts", source)
    prompts: dict[str, Prompt] = {}
    for raw_id in s.raw:
        prompt_id = str(raw_id)
        if not ID.fullmatch(prompt_id):
            raise s.error(prompt_id, "an id is lower-case letters, digits and _ (a file name)")
        text = s.text(raw_id)
        prompts[prompt_id] = Prompt(prompt_id, text, _placeholders(s, prompt_id, text))
    return prompts


def _placeholders(s: _Section, prompt_id: str, text: str) -> frozenset[str]:
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise s.error(prompt_id, f"braces do not pair up ({exc}); write {{{{ for a brace") from exc
    names: set[str] = set()
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise s.error(prompt_id, f"{{{name}}} is not a placeholder (known: {known})")
        if spec or conversion:
            raise s.error(prompt_id, f"write {{{name}}} without ! or :")
        names.add(name)
    return frozenset(names)


def _defaults(s: _Section, refs: _Refs) -> Defaults:
    for key in ("no_input", "invalid"):
        refs.prompt(f"{s.prefix}{key}", s.text(key))
    refs.node(f"{s.prefix}give_up", s.text("give_up"))
    return Defaults(
        no_input=s.text("no_input"),
        invalid=s.text("invalid"),
        give_up=s.text("give_up"),
        timeout_s=float(s.number("timeout_s", 5.0, MAX_TIMEOUT_S)),
        max_attempts=int(s.number("max_attempts", 3, MAX_ATTEMPTS, whole=True)),
    )


def _nodes(s: _Section, defaults: Defaults, refs: _Refs, source: str) -> dict[str, AnyNode]:
    if not s.raw:
        raise IvrConfigInvalid("menu", "must list the steps of a call", source)
    nodes: dict[str, AnyNode] = {}
    for raw_id, raw in s.raw.items():
        node_id = str(raw_id)
        if not ID.fullmatch(node_id) or node_id == REPEAT:
            problem = (
                "is reserved" if node_id == REPEAT else "an id is lower-case letters, digits, _"
            )
            raise s.error(node_id, problem)
        nodes[node_id] = _node(f"menu.{node_id}", node_id, raw, defaults, refs)
    return nodes


def _node(where: str, node_id: str, raw: Any, defaults: Defaults, refs: _Refs) -> AnyNode:
    if not isinstance(raw, dict):
        raise IvrConfigInvalid(where, "must be a mapping with kind:", refs.source)
    kind_text = raw.get("kind")
    if kind_text not in [k.value for k in NodeKind]:
        known = ", ".join(NodeKind)
        raise IvrConfigInvalid(
            f"{where}.kind", f"must be one of {known}, not {kind_text!r}", refs.source
        )
    kind = NodeKind(kind_text)
    s = _Section(where, raw, {"kind", *_NODE_FIELDS[kind]}, refs.source)
    common: dict[str, Any] = {"id": node_id, "prompt": s.prompt_ids("prompt", refs)}
    return _BUILDERS[kind](s, common, defaults, refs)


def _menu(s: _Section, common: dict[str, Any], d: Defaults, refs: _Refs) -> MenuNode:
    keys = s.section("keys", None)
    if not keys.raw:
        raise s.error("keys", "must map at least one key")
    routes: dict[str, Route] = {}
    for raw_key, target in keys.raw.items():
        key = str(raw_key)
        if key not in KEYS or len(key) != 1:
            raise keys.error(key, "is not a key on a phone (0-9, * or #; quote # and *)")
        routes[key] = _route(f"{keys.prefix}{key}", target, refs)
    timeout = float(s.number("timeout_s", d.timeout_s, MAX_TIMEOUT_S))
    words: dict[str, str] = {}
    if "words" in s.raw:
        spoken = s.section("words", None)
        for raw_word, raw_key in spoken.raw.items():
            word, key = str(raw_word).strip(), str(raw_key)
            if not word or len(word) > 16:
                raise spoken.error(str(raw_word), "a spoken word is 1 to 16 characters")
            if key not in routes:
                raise spoken.error(word, f"stands for key {key!r}, which this menu does not have")
            words[word] = key
    return MenuNode(**common, keys=routes, timeout_s=timeout, words=words)


def _record(s: _Section, common: dict[str, Any], d: Defaults, refs: _Refs) -> RecordNode:
    return RecordNode(
        **common,
        max_record_s=int(s.number("max_record_s", 120, MAX_RECORD_S, whole=True)),
        end_key=s.end_key(),
        next=s.route("next", refs),
    )


def _voicemail(s: _Section, common: dict[str, Any], d: Defaults, refs: _Refs) -> VoicemailNode:
    return VoicemailNode(
        **common,
        max_record_s=int(s.number("max_record_s", 120, MAX_RECORD_S, whole=True)),
        end_key=s.end_key(),
        action=s.action("create_ticket"),
        next=s.route("next", refs),
    )


def _collect(s: _Section, common: dict[str, Any], d: Defaults, refs: _Refs) -> CollectDigitsNode:
    return CollectDigitsNode(
        **common,
        length=int(s.number("length", None, MAX_DIGITS, whole=True)),
        end_key=s.end_key(),
        timeout_s=float(s.number("timeout_s", d.timeout_s, MAX_TIMEOUT_S)),
        next=s.route("next", refs),
    )


def _ask(s: _Section, common: dict[str, Any], d: Defaults, refs: _Refs) -> AskNode:
    return AskNode(
        **common,
        max_speech_s=int(s.number("max_speech_s", 30, MAX_SPEECH_S, whole=True)),
        end_key=s.end_key(),
        timeout_s=float(s.number("timeout_s", d.timeout_s, MAX_TIMEOUT_S)),
        action=s.action("answer_question"),
        next=s.route("next", refs),
        unavailable=s.route("unavailable", refs),
    )


def _transfer(s: _Section, common: dict[str, Any], d: Defaults, refs: _Refs) -> TransferNode:
    return TransferNode(**common, queue=s.text("queue"), fallback=s.route("fallback", refs))


def _hangup(s: _Section, common: dict[str, Any], d: Defaults, refs: _Refs) -> HangupNode:
    return HangupNode(**common)


_Builder = Callable[[_Section, dict[str, Any], Defaults, _Refs], AnyNode]
_BUILDERS: dict[NodeKind, _Builder] = {
    NodeKind.MENU: _menu,
    NodeKind.RECORD: _record,
    NodeKind.VOICEMAIL: _voicemail,
    NodeKind.COLLECT_DIGITS: _collect,
    NodeKind.ASK: _ask,
    NodeKind.TRANSFER: _transfer,
    NodeKind.HANGUP: _hangup,
}


def _check_give_up(nodes: Mapping[str, AnyNode], defaults: Defaults, source: str) -> None:
    node = nodes.get(defaults.give_up)
    if not isinstance(node, HangupNode):
        raise IvrConfigInvalid(
            "defaults.give_up", f"{defaults.give_up!r} must be a hangup step", source
        )


def _check_unique_keys(node: yaml.Node | None, where: str, source: str) -> None:
    """PyYAML keeps the last of two equal keys silently; here the second is an error (also
    ``1:`` beside ``"1":``, the same phone key)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            path = f"{where}.{key}" if where else key
            line = key_node.start_mark.line + 1
            if key in seen:
                raise IvrConfigInvalid(
                    path, f"is given twice (lines {seen[key]} and {line})", source
                )
            seen[key] = line
            _check_unique_keys(value_node, path, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_unique_keys(item, f"{where}[{i}]", source)
