"""Speech recognition for the voice hotline: what a caller says, as Chinese text, from the
call's 8 kHz audio, with Vosk (Kaldi) running offline on this machine.

- :class:`SpeechModel` is one Vosk model directory, loaded once per process and shared by
  every call (a ``vosk.Model`` is safe to share between threads); each caller turn gets its
  own :class:`Utterance` (one ``vosk.KaldiRecognizer``), fed 20 ms frames as they come.
- An utterance resamples the call's audio to the model's rate with :class:`StreamResampler`
  (the band-limited filter of :mod:`assistant.voice.pcm`, carried across frames so frame
  boundaries leave no trace), and reports changing partial texts and endpointed finals
  (Vosk's own end-of-speech detection). Vosk writes Chinese with spaces between words; they
  are taken out (:func:`tidy_text`).
- A menu turn may restrict recognition to its few words (a grammar): only the menu words and
  ``[unk]`` (anything else, when the model has that word) can then be heard. Small models (a
  lookahead graph, ``graph/HCLr.fst``) support that; big ones (a static ``graph/HCLG.fst``)
  do not and recognise freely, with a warning.
- No Chinese model ships on PyPI, so the model is a directory the operator names
  (``BANSHI_VOSK_MODEL``) or fetches once with :func:`fetch_model` on a connected machine.
  :func:`load_speech` never raises: without a model the hotline still works by keys, and
  :class:`SpeechStatus` says why in plain English for /healthz and the start-up log.
- :class:`ScriptedModel` is the fake beside the real one, for the call engine's tests; both
  satisfy the :class:`SpeechRecognizer` protocol.

Recognition is CPU-bound and blocking (some 7 ms of CPU per 20 ms frame with a small model
here, far more with a big one):
loading a model and ``Utterance.feed``/``finish`` belong in a worker thread
(``await asyncio.to_thread(utterance.feed, frame)``), never on the event loop itself. One
utterance is used by one thread at a time; different utterances run in parallel.

>>> tidy_text("居住 证 怎么 办")
'居住证怎么办'
>>> spoken_number("幺二三四 五六七八")
'12345678'
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from assistant.voice.numerals import digits_from_speech
from assistant.voice.pcm import HALF_TAPS, SAMPLE_WIDTH, resample, samples
from banshi.errors import Unavailable

log = logging.getLogger(__name__)

MODEL_SETTING = "BANSHI_VOSK_MODEL"  # the environment variable that names the model
CALL_RATE = 8000  # Hz: Asterisk AudioSocket's slin
DEFAULT_MODEL_RATE = 16000  # Hz: Kaldi's default --sample-frequency, that of every Vosk model
UNKNOWN_WORD = "[unk]"  # a grammar's "anything else", in the vocabulary of most small models
KEYS_ONLY = "the hotline offers keys only"
# Kaldi's log level inside libvosk: 0 prints every LOG line (a dozen a model load, one a
# grammar), -1 warnings and errors only, -2 errors only.
KALDI_LOG_LEVEL = -1
# What a Vosk model directory (the layout of every model on the Vosk site) must hold; the
# graph is either one static HCLG.fst or a lookahead pair that also takes grammars.
REQUIRED_FILES = ("am/final.mdl", "conf/model.conf", "conf/mfcc.conf")
STATIC_GRAPH = "graph/HCLG.fst"
LOOKAHEAD_GRAPH = ("graph/HCLr.fst", "graph/Gr.fst", "graph/disambig_tid.int")
# Where vosk itself looks for a model given by name (vosk.MODEL_DIRS, without importing it).
VOSK_MODEL_DIRS = (Path("/usr/share/vosk"), Path.home() / ".cache" / "vosk")
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
FETCH_TIMEOUT_S = 10.0

# Characters written without spaces between them: CJK radicals, punctuation and ideographs,
# and full-width forms. Hangul is not among them: Korean separates its words with spaces.
_CJK = "\u2e80-\u2fff\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_IN_CJK = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}])")


class SpeechModelError(Unavailable):
    """A speech model cannot be used (its directory is missing or incomplete, vosk is not
    installed, a fetch failed): ``detail`` names the path and what is wrong, in English for
    operators; callers hear the key menu instead."""

    code = "speech_unavailable"

    def __init__(self, path: str | Path, problem: str) -> None:
        super().__init__("语音识别暂不可用，请按键选择。", f"speech model {path}: {problem}")
        self.path = str(path)
        self.problem = problem


# -- text ------------------------------------------------------------------------------------
def tidy_text(text: str) -> str:
    """A recogniser's text as written Chinese: no spaces between Chinese characters, one
    space between other words, no ``[unk]``.

    >>> tidy_text("ok 居住 证")
    'ok 居住证'
    >>> tidy_text("  two   words ")
    'two words'
    """
    words = [w for w in text.split() if w != UNKNOWN_WORD]
    return _SPACE_IN_CJK.sub("", " ".join(words))


def spoken_number(text: str) -> str | None:
    """The digits of a number read out digit by digit (a 受理号), ``None`` if there are none.

    >>> spoken_number("幺二三")
    '123'
    >>> print(spoken_number("人工"))
    None
    """
    return digits_from_speech(text) or None


# -- streaming resampling --------------------------------------------------------------------
class StreamResampler:
    """:func:`assistant.voice.pcm.resample` for audio that comes in pieces: fed chunk by chunk,
    the output is the same as resampling the whole buffer at once.

    Each output sample depends on ``margin`` input samples either side of its position, so a
    chunk's last outputs wait for the next chunk (a lookahead of ``margin`` input samples,
    about 5 ms at 8 kHz) and the inputs they need are carried over. ``flush`` ends the
    stream: the last outputs are computed against silence beyond the end, exactly as the
    whole-buffer function does, and the resampler is ready for a new stream.

    >>> from assistant.voice.pcm import tone
    >>> pcm = tone(440, 8000, ms=100)
    >>> r = StreamResampler(8000, 16000)
    >>> out = b"".join(r.feed(pcm[i : i + 322]) for i in range(0, len(pcm), 322)) + r.flush()
    >>> out == resample(pcm, 8000, 16000)
    True
    """

    def __init__(self, src_rate: int, dst_rate: int) -> None:
        if src_rate <= 0 or dst_rate <= 0:
            raise ValueError(f"sample rates must be positive, not {src_rate} → {dst_rate}")
        self.src_rate, self.dst_rate = src_rate, dst_rate
        g = math.gcd(src_rate, dst_rate)
        self._up, self._down = dst_rate // g, src_rate // g
        # pcm's filter reaches ceil(HALF_TAPS * ratio) input samples either side of an output
        # (ratio = input samples per lower-rate sample); one more keeps clear of rounding.
        self.margin = math.ceil(HALF_TAPS * max(1.0, self._down / self._up)) + 1
        self._reset()

    def _reset(self) -> None:
        self._held = np.zeros(0, dtype=np.int16)  # input from sample self._start on
        self._start = 0  # always a multiple of self._down, so outputs align with it
        self._received = 0  # input samples so far
        self._emitted = 0  # output samples so far

    def feed(self, pcm: bytes) -> bytes:
        """The output that ``pcm`` (16-bit mono at ``src_rate``) completes, possibly empty."""
        if self._up == self._down:
            return bytes(pcm)
        x = samples(pcm)
        self._held = np.concatenate([self._held, x])
        self._received += x.size
        # Output m sits at input position m*down/up; it is final once the input reaches
        # margin samples past floor(m*down/up).
        last_base = self._received - 1 - self.margin
        end = -(-(last_base + 1) * self._up // self._down) if last_base >= 0 else 0
        return self._emit(end)

    def flush(self) -> bytes:
        """The remaining output, the input taken as silence after its end; then a new stream
        can begin."""
        if self._up == self._down:
            return b""
        out = self._emit(-(-self._received * self._up // self._down))
        self._reset()
        return out

    def _emit(self, end: int) -> bytes:
        if end <= self._emitted:
            return b""
        offset = self._start * self._up // self._down  # output index of the held input's start
        local = resample(self._held, self.src_rate, self.dst_rate)
        out = local[(self._emitted - offset) * SAMPLE_WIDTH : (end - offset) * SAMPLE_WIDTH]
        self._emitted = end
        # Keep the input that the next outputs reach back to.
        first_needed = max(0, self._emitted * self._down // self._up - self.margin)
        start = first_needed // self._down * self._down
        self._held = self._held[start - self._start :]
        self._start = start
        return out


# -- the model -------------------------------------------------------------------------------
def model_problem(path: Path) -> str | None:
    """What keeps ``path`` from being a Vosk model directory, in English; ``None`` if nothing
    (files are only looked for, not read)."""
    if not path.exists():
        return "does not exist"
    if not path.is_dir():
        return "is not a directory"
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if not (path / STATIC_GRAPH).is_file():
        lookahead_missing = [f for f in LOOKAHEAD_GRAPH if not (path / f).is_file()]
        if lookahead_missing:
            missing.append(f"{STATIC_GRAPH} (or {' + '.join(LOOKAHEAD_GRAPH)})")
    if not missing:
        return None
    problem = f"no {', no '.join(missing)}: not a Vosk model directory"
    try:
        inside = sorted(p.name for p in path.iterdir() if (p / REQUIRED_FILES[0]).is_file())
    except OSError:
        inside = []
    if inside:
        problem += f" (the model may be {path / inside[0]})"
    return problem


def model_sample_rate(path: Path) -> int:
    """The sample rate a model was trained on: ``--sample-frequency`` in its conf/mfcc.conf,
    else Kaldi's default of 16 kHz."""
    try:
        lines = (path / "conf" / "mfcc.conf").read_text(encoding="utf-8").splitlines()
    except OSError:
        return DEFAULT_MODEL_RATE
    for line in lines:
        name, _, value = line.split("#", 1)[0].strip().partition("=")
        if name == "--sample-frequency":
            try:
                return round(float(value))
            except ValueError:
                raise SpeechModelError(path, f"conf/mfcc.conf: {line.strip()!r}") from None
    return DEFAULT_MODEL_RATE


_loaded: dict[Path, SpeechModel] = {}
_loading = threading.Lock()


class SpeechModel:
    """One Vosk model directory, loaded: made by :meth:`load`, shared by all calls."""

    def __init__(self, path: Path, model: Any, sample_rate: int, supports_grammar: bool) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.supports_grammar = supports_grammar  # a lookahead graph: grammars can be built
        self._model = model  # vosk.Model
        self._warned_no_unk = False

    @classmethod
    def load(cls, path: str | Path) -> SpeechModel:
        """The model in directory ``path``, loaded on first use and the same object after
        (a small model takes a few seconds and some 100 MB; a big one minutes and GBs).
        Raises :class:`SpeechModelError` naming the path and what is wrong."""
        where = Path(path).expanduser().resolve()
        with _loading:
            if where in _loaded:
                return _loaded[where]
            problem = model_problem(where)
            if problem:
                raise SpeechModelError(where, problem)
            sample_rate = model_sample_rate(where)
            try:
                import vosk
            except ImportError as exc:
                raise SpeechModelError(
                    where, f"vosk is not installed (pip install 'banshi[voice]'): {exc}"
                ) from exc
            except OSError as exc:  # vosk dlopens libvosk.so at import
                raise SpeechModelError(where, f"libvosk cannot be loaded: {exc}") from exc
            vosk.SetLogLevel(KALDI_LOG_LEVEL)
            try:
                model = vosk.Model(str(where))
            except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
                raise SpeechModelError(
                    where, f"vosk could not load it ({exc}); see the Kaldi ERROR lines above"
                ) from exc
            supports_grammar = not (where / STATIC_GRAPH).is_file()
            speech = cls(where, model, sample_rate, supports_grammar)
            _loaded[where] = speech
            log.info(
                "speech model %s loaded: %d Hz, %s",
                where,
                sample_rate,
                "grammars supported" if supports_grammar else "static graph, no grammars",
            )
            return speech

    def knows(self, word: str) -> bool:
        """Whether ``word`` is in the model's vocabulary."""
        return bool(self._model.vosk_model_find_word(word) >= 0)

    def grammar_phrases(self, grammar: Iterable[str]) -> tuple[list[str], list[str]]:
        """The phrases of ``grammar`` as the model's words (a phrase that is no word of the
        vocabulary is split into the fewest words that are: 重听 → 重 听) and the phrases that
        cannot be written in its words at all, which the grammar leaves out."""
        fitted: list[str] = []
        dropped: list[str] = []
        for phrase in grammar:
            words: list[str] = []
            for token in phrase.split():
                pieces = self._segment(token)
                if pieces is None:
                    break
                words.extend(pieces)
            else:
                if words:
                    fitted.append(" ".join(words))
                    continue
            dropped.append(phrase)
        return fitted, dropped

    def _segment(self, token: str) -> list[str] | None:
        """``token`` as the fewest vocabulary words, longer words first among equals
        (아니요네 → 아니요 네, not 아니 요네); ``None`` if it cannot be."""

        def rank(words: list[str]) -> tuple[int, list[int]]:
            return len(words), [-len(w) for w in words]

        best: list[list[str] | None] = [[], *([None] * len(token))]
        for end in range(1, len(token) + 1):
            for start in range(end):
                head = best[start]
                if head is not None and self.knows(token[start:end]):
                    candidate = [*head, token[start:end]]
                    current = best[end]
                    if current is None or rank(candidate) < rank(current):
                        best[end] = candidate
        return best[len(token)]

    def utterance(
        self, call_rate: int = CALL_RATE, grammar: Sequence[str] | None = None
    ) -> Utterance:
        """A new recognition of one caller turn, fed audio at ``call_rate``. With a
        ``grammar`` (the menu's words), only those words can be heard, anything else as
        nothing (``[unk]``) or, if the model lacks that word, as the nearest menu word; a
        model without grammar support, or a grammar none of whose phrases the
        model can say, recognises freely (logged as a warning)."""
        import vosk

        used: list[str] | None = None
        if grammar is not None:
            used = self._grammar_for(grammar)
        if used is None:
            recognizer = vosk.KaldiRecognizer(self._model, float(self.sample_rate))
        else:
            spec = json.dumps(used, ensure_ascii=False)
            recognizer = vosk.KaldiRecognizer(self._model, float(self.sample_rate), spec)
        return Utterance(recognizer, call_rate, self.sample_rate, used)

    def _grammar_for(self, grammar: Sequence[str]) -> list[str] | None:
        if not self.supports_grammar:
            log.warning(
                "speech model %s has a static graph (%s) and takes no grammar: "
                "recognising freely instead of only %s",
                self.path,
                STATIC_GRAPH,
                list(grammar),
            )
            return None
        fitted, dropped = self.grammar_phrases(grammar)
        if dropped:
            log.warning(
                "speech model %s cannot say %s (not in its vocabulary): left out of the grammar",
                self.path,
                dropped,
            )
        if not fitted:
            log.warning("no phrase of the grammar is sayable by %s: recognising freely", self.path)
            return None
        if self.knows(UNKNOWN_WORD):
            fitted.append(UNKNOWN_WORD)
        elif not self._warned_no_unk:
            self._warned_no_unk = True
            log.warning(
                "speech model %s has no %s word: with a grammar, whatever a caller says is "
                "heard as the nearest grammar phrase",
                self.path,
                UNKNOWN_WORD,
            )
        return fitted


@dataclass(frozen=True)
class AsrEvent:
    """What an utterance has heard so far: a ``partial`` text (it may still change) or a
    ``final`` one (the recogniser detected the end of speech: the text of that stretch, empty
    when nothing it knows was said)."""

    kind: Literal["partial", "final"]
    text: str


class Utterance:
    """One caller turn being recognised: :meth:`feed` it the call's frames, then
    :meth:`finish`. Blocking (run it in a worker thread); one thread at a time."""

    def __init__(
        self, recognizer: Any, call_rate: int, model_rate: int, grammar: list[str] | None
    ) -> None:
        self.call_rate = call_rate
        self.grammar = grammar  # the phrases recognition is restricted to, None when free
        self._recognizer = recognizer  # vosk.KaldiRecognizer
        self._resampler = StreamResampler(call_rate, model_rate)
        self._finals: list[str] = []
        self._partial = ""
        self._text: str | None = None  # set by finish

    def feed(self, pcm: bytes) -> AsrEvent | None:
        """Take ``pcm`` (16-bit mono at the call rate, any length): a final event when the
        recogniser has detected an endpoint, a partial event when the partial text changed,
        ``None`` otherwise."""
        if self._text is not None:
            raise RuntimeError("this utterance is finished; start a new one")
        data = self._resampler.feed(pcm)
        if not data:
            return None
        if self._recognizer.AcceptWaveform(data):
            return self._final(self._recognizer.Result())
        partial = tidy_text(json.loads(self._recognizer.PartialResult()).get("partial", ""))
        if partial and partial != self._partial:
            self._partial = partial
            return AsrEvent("partial", partial)
        return None

    def _final(self, result: str) -> AsrEvent:
        text = tidy_text(json.loads(result).get("text", ""))
        if text:
            self._finals.append(text)
        self._partial = ""
        return AsrEvent("final", text)

    def finish(self) -> str:
        """The text of the whole turn: the finals already reported and what was heard since
        (Vosk's FinalResult). The recogniser is released; calling again gives the same."""
        if self._text is None:
            tail = self._resampler.flush()
            if tail and self._recognizer.AcceptWaveform(tail):
                self._final(self._recognizer.Result())
            self._final(self._recognizer.FinalResult())
            self._text = tidy_text(" ".join(self._finals))
            self._recognizer = None
        return self._text


# -- the protocol and the fake ---------------------------------------------------------------
@runtime_checkable
class SpeechTurn(Protocol):
    """One caller turn being recognised (:class:`Utterance`, :class:`ScriptedRecognizer`)."""

    def feed(self, pcm: bytes) -> AsrEvent | None: ...

    def finish(self) -> str: ...


@runtime_checkable
class SpeechRecognizer(Protocol):
    """What the call engine needs of speech recognition (:class:`SpeechModel`,
    :class:`ScriptedModel`)."""

    @property
    def sample_rate(self) -> int: ...

    def utterance(
        self, call_rate: int = CALL_RATE, grammar: Sequence[str] | None = None
    ) -> SpeechTurn: ...


class ScriptedRecognizer:
    """A turn that "hears" ``text`` once ``after_bytes`` of audio have been fed: one partial
    event (the first half of the text) at half way, then the final event; silence (``""``)
    gives no events. ``finish`` returns the text if the audio reached ``after_bytes``, else
    ``""``. Records what it was given (``call_rate``, ``grammar``, ``fed``)."""

    def __init__(
        self, text: str, after_bytes: int, call_rate: int, grammar: Sequence[str] | None
    ) -> None:
        self.text = text
        self.after_bytes = after_bytes
        self.call_rate = call_rate
        self.grammar = list(grammar) if grammar is not None else None
        self.fed = 0  # bytes of audio so far
        self.finished = False

    def feed(self, pcm: bytes) -> AsrEvent | None:
        if self.finished:
            raise RuntimeError("this utterance is finished; start a new one")
        before, self.fed = self.fed, self.fed + len(pcm)
        if not self.text:
            return None
        if before < self.after_bytes <= self.fed:
            return AsrEvent("final", self.text)
        half = self.after_bytes // 2
        if before < half <= self.fed < self.after_bytes:
            return AsrEvent("partial", self.text[: max(1, len(self.text) // 2)])
        return None

    def finish(self) -> str:
        self.finished = True
        return self.text if self.fed >= self.after_bytes else ""


@dataclass
class ScriptedModel:
    """A fake :class:`SpeechModel` for tests without a model: its n-th utterance hears
    ``texts[n]`` (silence once they run out) after ``after_bytes`` of audio (3,200: 200 ms at
    8 kHz). ``utterances`` keeps every turn it made, to assert on the grammar passed.

    >>> asr = ScriptedModel(["人工"], after_bytes=640)
    >>> turn = asr.utterance(grammar=["人工", "留言"])
    >>> [turn.feed(bytes(320)), turn.feed(bytes(320))]
    [AsrEvent(kind='partial', text='人'), AsrEvent(kind='final', text='人工')]
    >>> turn.finish(), asr.utterances[0].grammar
    ('人工', ['人工', '留言'])
    """

    texts: Sequence[str]
    after_bytes: int = 3200
    sample_rate: int = DEFAULT_MODEL_RATE
    utterances: list[ScriptedRecognizer] = field(default_factory=list)

    def utterance(
        self, call_rate: int = CALL_RATE, grammar: Sequence[str] | None = None
    ) -> ScriptedRecognizer:
        n = len(self.utterances)
        text = self.texts[n] if n < len(self.texts) else ""
        turn = ScriptedRecognizer(text, self.after_bytes, call_rate, grammar)
        self.utterances.append(turn)
        return turn


# -- finding, loading and fetching a model ---------------------------------------------------
def model_dirs() -> list[Path]:
    """Where a model given by name is looked for, in vosk's order: ``$VOSK_MODEL_PATH``,
    /usr/share/vosk, ~/.cache/vosk."""
    env = os.environ.get("VOSK_MODEL_PATH")
    return [*([Path(env)] if env else []), *VOSK_MODEL_DIRS]


def find_model(setting: str | None, search: Iterable[Path] | None = None) -> Path | None:
    """The model directory that ``setting`` (``BANSHI_VOSK_MODEL``) names: a path to a
    directory, or a bare model name (vosk-model-small-cn-0.22) looked for in ``search``
    (default :func:`model_dirs`). ``None`` when nothing is configured or found; whether the
    directory holds a usable model is :meth:`SpeechModel.load`'s business."""
    setting = (setting or "").strip()
    if not setting:
        return None
    path = Path(setting).expanduser()
    if path.is_dir():
        return path
    if MODEL_NAME.match(setting):
        for directory in model_dirs() if search is None else search:
            if (directory / setting).is_dir():
                return directory / setting
    return None


@dataclass(frozen=True)
class SpeechStatus:
    """Whether the hotline can hear speech, for /healthz and the start-up log."""

    available: bool
    model: str  # the model directory, or the setting as given ("" when none)
    sample_rate: int | None
    reason: str  # plain English: what is on, or why speech is off
    grammars: bool = False  # menu turns can be restricted to their words


def load_speech(model_dir: str | None) -> tuple[SpeechModel | None, SpeechStatus]:
    """The configured speech model and its status; never raises. Without a model (none
    configured, not found, not loadable, vosk missing) the model is ``None`` and the status
    says why: the hotline then offers keys only."""
    if not model_dir or not model_dir.strip():
        reason = f"no speech model configured ({MODEL_SETTING}); {KEYS_ONLY}"
        log.info("speech recognition off: %s", reason)
        return None, SpeechStatus(False, "", None, reason)
    path = find_model(model_dir)
    if path is None:
        reason = (
            f"speech model {model_dir} not found: no such directory, nor a model of that name "
            f"in {', '.join(map(str, model_dirs()))} ({MODEL_SETTING}); {KEYS_ONLY}"
        )
        log.warning("speech recognition off: %s", reason)
        return None, SpeechStatus(False, model_dir, None, reason)
    try:
        model = SpeechModel.load(path)
    except SpeechModelError as exc:
        reason = f"{exc.detail}; {KEYS_ONLY}"
    except Exception as exc:  # never raise: speech is an extra, keys must keep working
        reason = f"speech model {path}: unexpected {type(exc).__name__}: {exc}; {KEYS_ONLY}"
    else:
        grammar = "menu grammars supported" if model.supports_grammar else "no menu grammars"
        reason = (
            f"speech recognition on: Vosk model {model.path}, {model.sample_rate} Hz, {grammar}"
        )
        return model, SpeechStatus(
            True, str(model.path), model.sample_rate, reason, model.supports_grammar
        )
    log.warning("speech recognition off: %s", reason)
    return None, SpeechStatus(False, str(path), None, reason)


def fetch_model(name: str, dest: Path, timeout_s: float = FETCH_TIMEOUT_S) -> Path:
    """Download the Vosk model ``name`` (e.g. vosk-model-small-cn-0.22) into ``dest/name``
    with vosk's own downloader, on a machine that can reach the Vosk model site; the path of
    the model directory is returned (at once if it is already there). Raises
    :class:`SpeechModelError` when offline, when no model has that name, or when the
    download is not a model. For ``banshi voice fetch-model NAME``; prints a progress bar.
    ``timeout_s`` bounds the first request (the model list); vosk's download itself has none."""
    target = dest / name
    if not MODEL_NAME.match(name):
        raise SpeechModelError(target, f"{name!r} is not a Vosk model name")
    if model_problem(target) is None:
        return target
    try:
        import requests
        import vosk
    except (ImportError, OSError) as exc:
        raise SpeechModelError(
            target, f"vosk is not installed (pip install 'banshi[voice]'): {exc}"
        ) from exc
    # vosk.Model(model_name=...) would look in its own folders, download into the last of
    # them and exit the process on an unknown name; its download_model(path) step alone
    # fetches MODEL_PRE_URL/<name>.zip and unpacks it beside path, so check the name against
    # the model list first (with a timeout: an offline machine fails at once).
    list_url = vosk.MODEL_LIST_URL
    try:
        response = requests.get(list_url, timeout=timeout_s)
        response.raise_for_status()
        names = [m["name"] for m in response.json()]
    except requests.RequestException as exc:
        raise SpeechModelError(
            target,
            f"cannot reach the Vosk model list {list_url} ({type(exc).__name__}): this machine "
            f"seems offline; copy the model directory from a connected machine and set "
            f"{MODEL_SETTING} to it",
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise SpeechModelError(target, f"{list_url} is not a Vosk model list: {exc}") from exc
    if name not in names:
        chinese = sorted(n for n in names if "-cn" in n)
        raise SpeechModelError(
            target, f"no Vosk model is named {name!r} (Chinese ones: {', '.join(chinese)})"
        )

    class _Downloader(vosk.Model):
        """vosk's downloader without a model: nothing to load, nothing to free."""

        def __init__(self) -> None:
            pass

        def __del__(self) -> None:
            pass

    archive = Path(f"{target}.zip")
    try:
        _Downloader().download_model(target)
    except Exception as exc:  # urllib's URLError and HTTPError, zipfile.BadZipFile, OSError
        archive.unlink(missing_ok=True)
        raise SpeechModelError(target, f"download failed ({type(exc).__name__}: {exc})") from exc
    problem = model_problem(target)
    if problem:
        raise SpeechModelError(target, f"the downloaded archive held no model here: {problem}")
    log.info("speech model %s fetched into %s", name, target)
    return target
