"""Call audio for the voice hotline: ivr.yml's prompts, a knowledge-base answer, a 受理号 read
digit by digit and the record tone, as the call's PCM (16-bit mono, 8 kHz unless told).

Speech comes from the kiosk's engine (``kiosk.tts``: espeak-ng's Mandarin through pyttsx3,
rendered in a worker process, WAVs kept by ``SpeechCache``); this module decides *what* is
rendered and *when*, so that a call costs almost no synthesis:

- A prompt's text is cut at its placeholders. ``受理号{number}的办理进度：{status}。`` is the
  text ``受理号``, the number, the text ``的办理进度：``, the status and a ``。``. The fixed
  pieces (the texts, and the values known at start: ``{centre}``, ``{hotline}``, ``{phone}``,
  ``{hours}``, each step's ``{seconds}``) are rendered once (``warm()`` does them all at
  start), kept in memory for good and on disk under ``cache_dir/fixed/`` across restarts.
- ``{number}`` is put together from ten pre-rendered digit clips (1 is 幺, 0 is 零, as
  hotlines read them), so reading back a 受理号 is instant and never reaches the engine.
- The per-call values (``PER_CALL``: ``{status}``, ``{answer}``, ``{question}``,
  ``{next_open}``) and ``say()``'s texts are rendered when asked, then kept by text in a
  memory LRU (``MEMORY_BYTES``) and under ``cache_dir/calls/``, so a knowledge-base answer
  asked twice is rendered once. They are kept apart from the fixed pieces so that the
  answers never push the menu out of either cache.
- The pieces are trimmed of the engine's leading and trailing silence and joined with
  pauses that follow the punctuation at the joint (``SENTENCE_PAUSE_S`` after 。！？,
  ``CLAUSE_PAUSE_S`` after ，；：、, ``WORD_PAUSE_S`` inside a clause).

Recordings: when the centre recorded a prompt (``prompts/<id>.wav``, any rate, mono or
stereo, 8/16/32-bit PCM) it is played instead of speech, converted to the call's rate once
and reloaded when the file changes (its mtime or size). A recording is played only for a
prompt without per-call placeholders: a recording cannot say this caller's 受理号, and
playing a recording with a synthesised number spliced in would mix two voices in one
sentence, so such a prompt is spoken whole by the engine (a warning is logged once). A file
that cannot be read as a WAV is logged once (per version of the file) and the prompt is
spoken instead.

When speech fails (``SpeechUnavailable``: espeak-ng or pyttsx3 missing, the engine timed
out), ``prompt()``, ``say()`` and ``digits()`` do not raise into the call: they return
``fallback()`` (two short descending tones), the failure is logged once and reported by
``status()``, and the engine is not tried again for ``RETRY_S`` (a hanging engine would
otherwise stall every prompt for its timeout). Recorded prompts, prompts whose pieces are
all rendered already (in memory) and the beep keep working, so a centre that records its
menu keeps a working hotline without any engine.

Every method is safe to call from many call threads at once; renders are serialised by the
disk caches (one engine process at a time per cache), everything else is a dict look-up.

Texts given to the engine are made speakable first (``speakable``): links and list markup
from the chat's answers are dropped, ``#``/``*`` keys named, times and long numbers said the
way a person would.
"""

from __future__ import annotations

import io
import logging
import re
import string
import threading
import time
import wave
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from assistant.voice.menu import IvrConfig, RecordNode, VoicemailNode
from assistant.voice.pcm import PCM_DTYPE, SAMPLE_WIDTH, resample, samples, tone
from kiosk.errors import SpeechUnavailable
from kiosk.tts import LEAD_IN_S, SpeechCache, Synthesizer, browser_wav

log = logging.getLogger(__name__)

RATE = 8000  # the call's audio: Asterisk's slin
# Placeholders whose value changes from call to call: synthesised (or, {number}, put
# together from digit clips) when asked. The others are known at start and rendered by warm().
PER_CALL = frozenset({"number", "status", "answer", "question", "next_open"})
DIGIT_WORDS = "零幺二三四五六七八九"  # a 受理号 or a phone number: 1 is 幺, as hotlines read it
YEAR_WORDS = "零一二三四五六七八九"  # a year is read with 一: 二零二六年, 一九九八年
ANSWER_CHARS = 200  # a per-call text longer than this is cut at a sentence end (~45 s spoken)
DIGIT_GAP_S = 0.15  # between the digits of a number
GROUP_GAP_S = 0.35  # where a number has a space or a hyphen: 8123 4500
WORD_PAUSE_S = 0.05  # a placeholder inside a clause: 欢迎致电{centre}
CLAUSE_PAUSE_S = 0.25  # after ，；：、
SENTENCE_PAUSE_S = 0.45  # after 。！？
PROMPT_GAP_S = 0.5  # between two prompts played one after the other
BEEP_HZ, BEEP_S = 1000, 0.3  # the record tone
MEMORY_BYTES = 32 * 2**20  # the per-call LRU: ~35 minutes of 8 kHz speech
RETRY_S = 30.0  # after a failure, speech is not tried again for this long
SILENCE = 128  # |sample| at or below this is silence when trimming speech (about -48 dBFS)
TRIM_MARGIN_S = 0.02  # kept either side of the speech when trimming

_NO_VALUES: Mapping[str, str] = MappingProxyType({})
_SENTENCE_ENDS = "。！？!?…"
_CLAUSE_MARKS = "，；：、,;:"


@dataclass(frozen=True)
class _Part:
    """A piece of a prompt's text: literal text, or a placeholder's name."""

    text: str
    field: bool


@dataclass(frozen=True)
class _Recording:
    path: Path
    stamp: tuple[int, int]  # mtime in ns, size: a new version of the file reloads
    pcm: bytes | None  # None: the file is broken (logged once)


class CallAudio:
    """The audio of a call's prompts at ``rate`` Hz. ``values`` holds the placeholders known
    at start (``centre``, ``hotline``, ``phone``, ``hours``…); a call's own ones are given
    to ``prompt()``."""

    def __init__(
        self,
        config: IvrConfig,
        synthesizer: Synthesizer,
        cache_dir: Path,
        values: Mapping[str, str] = _NO_VALUES,
        rate: int = RATE,
    ) -> None:
        self.config = config
        self.synthesizer = synthesizer
        self.cache_dir = cache_dir
        self.values = {k: str(v) for k, v in values.items()}
        self.rate = rate
        self._fixed_disk = SpeechCache(cache_dir / "fixed", synthesizer)
        self._calls_disk = SpeechCache(cache_dir / "calls", synthesizer)
        self._parts = {pid: _parse(p.text) for pid, p in config.prompts.items()}
        self._lock = threading.Lock()  # guards everything below
        self._pinned: dict[str, bytes] = {}  # fixed pieces, never evicted
        self._lru = _Lru(MEMORY_BYTES)
        self._recordings: dict[str, _Recording] = {}
        self._warned: set[str] = set()  # prompt ids whose recording is not used
        self._failure: str | None = None  # why speech failed last, until it works again
        self._retry_at = 0.0

    # -- what the call engine plays ----------------------------------------------------------
    def prompt(self, prompt_id: str, **values: object) -> bytes:
        """The prompt with its placeholders filled: the centre's recording if there is one
        it can use, else speech. Blocking (a fixed prompt is a memory look-up once warmed).
        An unknown id is a KeyError, a missing placeholder a ValueError (bugs of the caller);
        a value of None or "" says nothing; speech failing is not an error here: see the
        module's docstring."""
        prompt = self.config.prompts[prompt_id]
        given = {k: "" if v is None else str(v) for k, v in values.items()}
        filled = {**self.values, **given}
        missing = prompt.placeholders - filled.keys()
        if missing:
            raise ValueError(f"prompt {prompt_id!r} needs {', '.join(sorted(missing))}")
        recorded = self._recording(prompt_id)
        if recorded is not None:
            return recorded
        try:
            return self._join(self._pieces(prompt_id, filled))
        except SpeechUnavailable:
            return self.fallback()

    def prompts(self, prompt_ids: Sequence[str], **values: object) -> bytes:
        """Several prompts one after the other (a step's ``prompt:`` list), ``PROMPT_GAP_S``
        apart; each takes the placeholders it needs from ``values``."""
        audio = [self.prompt(pid, **values) for pid in prompt_ids]
        return self._silence(PROMPT_GAP_S).join(a for a in audio if a)

    def say(self, text: str) -> bytes:
        """Any text, e.g. the knowledge base's answer: made speakable, cut to about
        ``ANSWER_CHARS`` characters at a sentence end, rendered (or taken from the cache)."""
        spoken = speakable(text, ANSWER_CHARS)
        if not _has_words(spoken):
            return b""
        try:
            return self._speech(spoken, fixed=False)[0]
        except SpeechUnavailable:
            return self.fallback()

    def digits(self, digits: str) -> bytes:
        """A number read digit by digit from the digit clips, ``DIGIT_GAP_S`` apart; a space
        or a hyphen in it is a longer pause (``8123 4500``); ``*`` and ``#`` are said as 星
        and 井, any other character is spoken as it is."""
        try:
            return self._digits(digits)
        except SpeechUnavailable:
            return self.fallback()

    def beep(self) -> bytes:
        """The record tone played after "请在提示音后…": 1 kHz for 0.3 s."""
        return tone(BEEP_HZ, self.rate, ms=1000 * BEEP_S)

    def fallback(self) -> bytes:
        """What a prompt sounds like when speech fails: two short descending tones, so the
        caller hears that the line is alive and the engine can go on (or hand over)."""
        gap = self._silence(0.1)
        return tone(660, self.rate, ms=200, amplitude=8000) + gap + tone(440, self.rate, ms=300)

    # -- start-up and health -----------------------------------------------------------------
    def warm(self) -> int:
        """Render every fixed piece of every prompt and the ten digit clips now (at service
        start, in a thread), so that no call waits for them. Prompts played from a
        recording are loaded instead of rendered. Returns how many pieces were made ready
        (synthesised, or read from the disk cache of an earlier run); pieces already in
        memory are not counted, so a second call returns 0. Stops early, without raising,
        when speech is unavailable (``status()`` says why)."""
        started = time.monotonic()
        texts = list(DIGIT_WORDS)
        seconds = self._seconds_by_prompt()
        for prompt_id, parts in self._parts.items():
            if self._recording(prompt_id) is not None:
                continue
            for part in parts:
                if not part.field:
                    texts.append(speakable(part.text))
                elif part.text in PER_CALL:
                    continue
                elif part.text in self.values:
                    texts.append(speakable(self.values[part.text]))
                elif part.text == "seconds" and prompt_id in seconds:
                    texts += sorted(speakable(s) for s in seconds[prompt_id])
                else:
                    log.warning(
                        "ivr prompt %s needs {%s}, which the voice service was not given",
                        prompt_id,
                        part.text,
                    )
        made = 0
        for text in (t for t in dict.fromkeys(texts) if _has_words(t)):
            try:
                made += self._speech(text, fixed=True)[1]
            except SpeechUnavailable:
                break
        log.info("ivr prompts: %d pieces ready in %.1f s", made, time.monotonic() - started)
        return made

    def status(self) -> dict[str, object]:
        """For /healthz: the engine's key, whether speech works (``reason`` if not; the
        engine's cheap ``check()`` when nothing has failed yet, no render), the prompts the
        centre recorded and those of them not played, and the caches' sizes."""
        with self._lock:
            reason = self._failure
            memory = (len(self._pinned) + len(self._lru), self._lru.bytes + _size(self._pinned))
        if reason is None:
            check = getattr(self.synthesizer, "check", None)
            if callable(check):
                try:
                    check()
                except SpeechUnavailable as exc:
                    reason = exc.detail
        recorded = [pid for pid in self.config.prompts if self.config.recorded_prompt(pid)]
        not_played = [pid for pid in recorded if self._recording(pid) is None]
        files = [p for d in ("fixed", "calls") for p in (self.cache_dir / d).glob("*.wav")]
        return {
            "engine": self.synthesizer.key,
            "speech": reason is None,
            "reason": reason,
            "recorded_prompts": len(recorded),
            "recordings_not_played": not_played,
            "memory_pieces": memory[0],
            "memory_bytes": memory[1],
            "disk_files": len(files),
            "disk_bytes": sum(_file_size(p) for p in files),
        }

    # -- pieces ----------------------------------------------------------------------------
    def _pieces(self, prompt_id: str, values: Mapping[str, str]) -> list[tuple[bytes, str]]:
        """The audio of each part of the prompt, with the text it says (for the pauses)."""
        pieces: list[tuple[bytes, str]] = []
        for part in self._parts[prompt_id]:
            if part.field and part.text == "number":
                number = values["number"]
                pieces.append((self._digits(number), number))
                continue
            per_call = part.field and part.text in PER_CALL
            raw = values[part.text] if part.field else part.text
            text = speakable(raw, ANSWER_CHARS if per_call else None)
            audio = self._speech(text, fixed=not per_call)[0] if _has_words(text) else b""
            pieces.append((audio, text))
        return pieces

    def _digits(self, digits: str) -> bytes:
        out: list[bytes] = []
        gap = DIGIT_GAP_S
        for char in digits.translate(_FULL_WIDTH):
            if char.isspace() or char in "-－—":
                gap = GROUP_GAP_S
                continue
            if char.isascii() and char.isdigit():
                word = DIGIT_WORDS[int(char)]
            else:
                word = {"*": "星", "#": "井"}.get(char, char)
            if out:
                out.append(self._silence(gap))
            out.append(self._speech(word, fixed=True)[0])
            gap = DIGIT_GAP_S
        return b"".join(out)

    def _join(self, pieces: Iterable[tuple[bytes, str]]) -> bytes:
        """The pieces one after the other, with a pause at each joint that follows the
        punctuation on either side of it. A piece of punctuation alone (the ``。`` after
        ``{status}``) has no audio, only its pause."""
        out: list[bytes] = []
        end = ""  # the last character said so far, punctuation included
        for audio, text in pieces:
            if not audio:
                end = (text[-1:] or end) if out else end
                continue
            if out:
                out.append(self._silence(max(_pause(end), _pause(text[:1]))))
            out.append(audio)
            end = text[-1:]
        return b"".join(out)

    def _speech(self, text: str, fixed: bool) -> tuple[bytes, bool]:
        """The trimmed PCM of ``text`` and whether it had to be made now (not in memory)."""
        with self._lock:
            hit = self._pinned.get(text)
            if hit is None:
                hit = self._lru.get(text)
        if hit is not None:
            return hit, False
        pcm = _trim(self._synthesize(text, fixed), self.rate)
        with self._lock:
            if fixed:
                self._pinned[text] = pcm
            else:
                self._lru.put(text, pcm)
        return pcm, True

    def _synthesize(self, text: str, fixed: bool) -> bytes:
        with self._lock:
            if self._failure is not None and time.monotonic() < self._retry_at:
                raise SpeechUnavailable(self._failure)
        try:
            wav = (self._fixed_disk if fixed else self._calls_disk).wav(text)
            pcm = _pcm_at(wav, self.rate)
        except (SpeechUnavailable, OSError) as exc:
            reason = exc.detail if isinstance(exc, SpeechUnavailable) else f"{exc}"
            self._failed(reason)
            raise SpeechUnavailable(reason) from exc
        with self._lock:
            back, self._failure = self._failure is not None, None
        if back:
            log.info("ivr prompts: speech works again")
        return pcm

    def _failed(self, reason: str) -> None:
        with self._lock:
            first = self._failure is None
            self._failure, self._retry_at = reason, time.monotonic() + RETRY_S
        if first:  # once per outage, not once per prompt
            log.warning("ivr prompts: speech unavailable, callers hear tones (%s)", reason)

    # -- recordings ------------------------------------------------------------------------
    def _recording(self, prompt_id: str) -> bytes | None:
        """The centre's recording of the prompt at the call's rate, or None (no file, a
        broken one, or a prompt with per-call placeholders)."""
        path = self.config.recorded_prompt(prompt_id)
        if path is None:
            return None
        per_call = self.config.prompts[prompt_id].placeholders & PER_CALL
        if per_call:
            with self._lock:
                first = prompt_id not in self._warned
                self._warned.add(prompt_id)
            if first:
                names = ", ".join(f"{{{n}}}" for n in sorted(per_call))
                log.warning(
                    "%s is not played: prompt %s says %s, which changes each call; "
                    "it is spoken by the speech engine instead",
                    path,
                    prompt_id,
                    names,
                )
            return None
        try:
            info = path.stat()
        except OSError:  # removed since recorded_prompt() looked
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        with self._lock:
            known = self._recordings.get(prompt_id)
        if known is not None and known.path == path and known.stamp == stamp:
            return known.pcm
        pcm: bytes | None
        try:
            pcm = _pcm_at(path.read_bytes(), self.rate)
        except Exception as exc:  # whatever is wrong with the centre's file, the call goes on
            reason = exc.detail if isinstance(exc, SpeechUnavailable) else f"{exc}"
            log.warning("%s is not a usable WAV (%s): prompt %s is spoken", path, reason, prompt_id)
            pcm = None
        with self._lock:
            self._recordings[prompt_id] = _Recording(path, stamp, pcm)
        return pcm

    def _seconds_by_prompt(self) -> dict[str, set[str]]:
        """Each prompt's ``{seconds}`` values: the recording limits of the steps playing it."""
        seconds: dict[str, set[str]] = {}
        if "seconds" in self.values:
            return {pid: {self.values["seconds"]} for pid in self.config.prompts}
        for node in self.config.nodes.values():
            if isinstance(node, RecordNode | VoicemailNode):
                for prompt_id in node.prompt:
                    seconds.setdefault(prompt_id, set()).add(str(node.max_record_s))
        return seconds

    def _silence(self, seconds: float) -> bytes:
        return bytes(SAMPLE_WIDTH * round(seconds * self.rate))


class _Lru:
    """PCM by text, least recently used first out beyond ``max_bytes``. Not thread-safe:
    CallAudio holds its lock around it."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> bytes | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: bytes) -> None:
        old = self._items.pop(key, None)
        self.bytes += len(value) - (len(old) if old is not None else 0)
        self._items[key] = value
        while self.bytes > self.max_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self.bytes -= len(dropped)


# -- audio helpers ---------------------------------------------------------------------------
def _parse(text: str) -> tuple[_Part, ...]:
    """A prompt's text cut at its placeholders (``{{`` is a literal brace, as in str.format).

    >>> [(p.text, p.field) for p in _parse("受理号{number}的办理进度：{status}。")]
    [('受理号', False), ('number', True), ('的办理进度：', False), ('status', True), ('。', False)]
    """
    parts: list[_Part] = []
    for literal, field, _, _ in string.Formatter().parse(text):
        if literal:
            parts.append(_Part(literal, False))
        if field is not None:
            parts.append(_Part(field, True))
    return tuple(parts)


def _pcm_at(wav: bytes, rate: int) -> bytes:
    """Any PCM WAV (the engine's, or a centre's recording) as mono 16-bit PCM at ``rate``.
    ``browser_wav`` does the mixing to mono and the sample widths; the lead-in it puts first
    is taken off again. Raises SpeechUnavailable (or ValueError) for what is not such a WAV."""
    mono = browser_wav(wav)
    with wave.open(io.BytesIO(mono)) as w:
        source_rate = w.getframerate()
        frames = w.readframes(w.getnframes())
    lead = round(LEAD_IN_S * source_rate) * SAMPLE_WIDTH
    return resample(frames[lead:], source_rate, rate)


def _trim(pcm: bytes, rate: int) -> bytes:
    """The speech without the silence before and after it (``TRIM_MARGIN_S`` kept)."""
    x = samples(pcm)
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > SILENCE)
    if loud.size == 0:
        return b""
    margin = round(TRIM_MARGIN_S * rate)
    start, end = max(0, int(loud[0]) - margin), min(x.size, int(loud[-1]) + 1 + margin)
    return x[start:end].astype(PCM_DTYPE).tobytes()


def _pause(char: str) -> float:
    if char and char in _SENTENCE_ENDS:
        return SENTENCE_PAUSE_S
    if char and char in _CLAUSE_MARKS:
        return CLAUSE_PAUSE_S
    return WORD_PAUSE_S


def _size(items: Mapping[str, bytes]) -> int:
    return sum(len(v) for v in items.values())


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:  # pruned meanwhile
        return 0


def _has_words(text: str) -> bool:
    return any(c.isalnum() for c in text)


# -- text made speakable -----------------------------------------------------------------------
_FULL_WIDTH = str.maketrans("０１２３４５６７８９＃＊", "0123456789#*")
_URL_CHARS = r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+"
_MD_LINK = re.compile(r"\[([^\]\n]*)\]\([^)\s]*\)")
# a link with the words that introduce it (链接：https://…, 详见www…)
_URL = re.compile(
    r"(?:(?:相关)?(?:链接|网址|网站|官网|详见|详情见|请访问|访问)\s*)?[:：]?\s*"
    rf"(?:https?://|www\.){_URL_CHARS}"
)
_BULLET = re.compile(
    r"^\s*(?:[-*+](?=\s)|[•●▪·]|#{1,6}(?=\s)|\d{1,2}[.、)）](?!\d)|[（(]\d{1,2}[)）])\s*"
)
_EMPHASIS = re.compile(r"\*\*|__|`")
_BRACKETS = re.compile(r"【([^】\n]*)】")
_DOT = re.compile(r"\s*·\s*")
_MARKS = re.compile(r"[，。；：、,;:]{2,}")  # left by a link taken out: 办理，。
_HASH_KEY = re.compile(r"(?<=按)\s*#|#(?=\s*号)")
_STAR_KEY = re.compile(r"(?<=按)\s*\*|\*(?=\s*号)")
_TIME = re.compile(r"(?<!\d)([01]?\d|2[0-4])[:：]([0-5]\d)(?!\d)")
_YEAR = re.compile(r"(?<!\d)(\d{4})(?=年)")
_NUMBER = re.compile(r"(?<![\d.])\d+(?:[ \-－]\d+)*(?!\.?\d)")
_RANGE = re.compile(r"(?<=[\dA-Za-z点分])\s*[-－—–~～]+\s*(?=[\dA-Za-z])")
# after a number, these make it a quantity (10000元, 15个工作日), said as a number
_UNITS = "元万亿人个件天日月年周次份岁名户项分秒米克斤%％小平公千毫套间台辆张页字倍"
LONG_NUMBER = 5  # digits: at least this many (and no unit after) are read digit by digit


def speakable(text: str, limit: int | None = None) -> str:
    """``text`` as the speech engine should get it. Simple rules, in this order:

    - links go, with the word introducing them (``链接：https://…``); a markdown link keeps
      its title; list bullets and numbering at a line's start, ``**`` and backticks go;
      ``【标题】`` becomes ``标题，``; lines are joined, with a ``。`` where one had none;
    - ``#`` and ``*`` as keys (``按#号键``) are 井 and 星; any other ``#`` or ``*`` goes;
    - times: ``9:00`` is ``9点``, ``9:30`` ``9点30分``; a range's hyphen or tilde is 至;
    - a year (``2026年``) is read digit by digit with 一; a number of ``LONG_NUMBER`` or more
      digits, also in groups joined by spaces or hyphens (a phone number ``8123 4500``), is
      read digit by digit with 幺 for 1, unless a unit follows (``10000元`` is a quantity);
      shorter numbers are left to the engine, which says them as quantities (20元 二十元);
    - ``limit``: a longer text is cut after its last sentence end (else clause mark) within
      ``limit`` characters; a text the knowledge base already cut (ending in …) loses the
      unfinished sentence.

    >>> speakable("链接：https://zwfw.example.cn/guide?id=1\\n- 带户口簿原件\\n- **照片**现场拍")
    '带户口簿原件。照片现场拍'
    >>> speakable("咨询电话：8123 4500，热线12345。")
    '咨询电话：八幺二三，四五零零，热线幺二三四五。'
    >>> speakable("上午9:00-12:00，工本费20元，补贴10000元")
    '上午9点至12点，工本费20元，补贴10000元'
    >>> speakable("说完请按#号键，返回请按*")
    '说完请按井号键，返回请按星'
    >>> speakable("自2026年1月起施行。后面的内容很长很长", limit=12)
    '自二零二六年1月起施行。'
    """
    text = _MD_LINK.sub(r"\1", text.translate(_FULL_WIDTH))
    text = _URL.sub("", text)
    lines = []
    for raw in text.splitlines():
        line = _BRACKETS.sub(r"\1，", _EMPHASIS.sub("", _BULLET.sub("", raw)))
        line = line.strip().lstrip(_SENTENCE_ENDS + _CLAUSE_MARKS).strip()
        if _has_words(line):
            lines.append(line)
    text = "".join(
        line if i == len(lines) - 1 or line[-1] in _SENTENCE_ENDS + _CLAUSE_MARKS else line + "。"
        for i, line in enumerate(lines)
    )
    text = _MARKS.sub(lambda m: "。" if "。" in m[0] else m[0][0], _DOT.sub("，", text))
    text = _STAR_KEY.sub("星", _HASH_KEY.sub("井", text)).replace("#", "").replace("*", "")
    text = _TIME.sub(_time, text)
    text = _YEAR.sub(lambda m: "".join(YEAR_WORDS[int(d)] for d in m[1]), text)
    text = _NUMBER.sub(_number, text)
    text = _RANGE.sub("至", text)
    text = re.sub(r"\s+", " ", text).strip()
    return _clip(text, limit) if limit is not None else text


def spoken_digits(digits: str) -> str:
    """Digits as a hotline reads them, one by one.

    >>> spoken_digits("20261034")
    '二零二六幺零三四'
    """
    return "".join(DIGIT_WORDS[int(d)] for d in digits)


def _time(m: re.Match[str]) -> str:
    hour, minute = m[1], m[2]
    if minute == "00":
        return f"{int(hour)}点"
    return f"{int(hour)}点{'零' if minute[0] == '0' else ''}{int(minute)}分"


def _number(m: re.Match[str]) -> str:
    groups = re.split(r"[ \-－]", m[0])
    after = m.string[m.end() : m.end() + 1]
    if sum(map(len, groups)) < LONG_NUMBER or (after and after in _UNITS):
        return m[0]
    return "，".join(spoken_digits(g) for g in groups)


def _clip(text: str, limit: int) -> str:
    if text.endswith("…"):  # cut mid-sentence upstream: end at the last whole sentence
        whole = max(text.rfind(c, 0, len(text) - 1) for c in "。！？!?")
        text = text[: whole + 1] if whole > 0 else text[:-1]
    if len(text) <= limit:
        return text
    head = text[:limit]
    end = max(head.rfind(c) for c in "。！？!?；;")
    if end >= limit // 3:
        return head[: end + 1] if head[end] in "。！？!?" else head[:end] + "。"
    clause = max(head.rfind(c) for c in "，,、：:")
    return (head[:clause] if clause >= limit // 3 else head).rstrip() + "。"
