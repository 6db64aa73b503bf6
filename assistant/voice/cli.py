"""`banshi voice …`: check the hotline's menu and speech, fetch a speech model, place a call."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click


@click.group()
def voice() -> None:
    """The voice hotline (IVR): ivr.yml, speech models, test calls."""


@voice.command()
def check() -> None:
    """Validate ivr.yml and say whether speech recognition and synthesis work."""
    from assistant.voice.asr import load_speech
    from assistant.voice.menu import IvrConfig, IvrConfigInvalid
    from banshi.settings import get_settings
    from kiosk.errors import SpeechUnavailable
    from kiosk.tts import EspeakSynthesizer

    settings = get_settings()
    path = settings.kb_source_dir / "ivr.yml"
    try:
        config = IvrConfig.load(path)
    except IvrConfigInvalid as exc:
        raise click.ClickException(exc.detail) from exc
    click.echo(f"{path}: {len(config.nodes)} steps, {len(config.prompts)} prompts, ok")
    recorded = [p for p in config.prompts if config.recorded_prompt(p)]
    click.echo(f"recorded prompts: {len(recorded)} of {len(config.prompts)}")
    _, speech = load_speech(settings.vosk_model or None)
    if speech.available:
        click.echo(f"speech recognition: on ({speech.model}, {speech.sample_rate} Hz)")
    else:
        click.echo(f"speech recognition: off — {speech.reason}")
    try:
        EspeakSynthesizer().check()
        click.echo("speech synthesis: espeak-ng ok")
    except SpeechUnavailable as exc:
        click.echo(f"speech synthesis: off — {exc.detail}")


@voice.command("fetch-model")
@click.argument("name")
@click.option(
    "--dest", type=click.Path(path_type=Path), default=None, help="Default: <data>/voice/models."
)
def fetch_model(name: str, dest: Path | None) -> None:
    """Download a Vosk model by name (a connected machine only), e.g.
    vosk-model-small-cn-0.22; then set BANSHI_VOSK_MODEL to the printed directory."""
    from assistant.voice.asr import fetch_model as fetch
    from banshi.settings import get_settings

    target = dest or get_settings().voice_dir / "models"
    try:
        path = fetch(name, target)
    except Exception as exc:
        raise click.ClickException(f"could not fetch {name}: {exc}") from exc
    click.echo(f"BANSHI_VOSK_MODEL={path}")


@voice.command()
@click.option(
    "--to",
    "address",
    default="127.0.0.1:9092",
    show_default=True,
    help="The AudioSocket server (BANSHI_VOICE_AUDIOSOCKET).",
)
@click.option(
    "--script",
    required=True,
    help='Steps, e.g. ". k:3 . @message.wav k:# . k:1 ." (see assistant/voice/caller.py).',
)
@click.option("--caller", default="", help="Announce this caller number first (needs --api).")
@click.option(
    "--api",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Where to announce the caller number.",
)
@click.option(
    "--save",
    type=click.Path(path_type=Path),
    default=None,
    help="Write everything heard to this WAV file (8 kHz).",
)
def call(address: str, script: str, caller: str, api: str, save: Path | None) -> None:
    """Call the hotline as a telephone would (AudioSocket), from a script of keys and WAVs."""
    import uuid

    import httpx

    from assistant.voice.caller import parse_script, place_call
    from assistant.voice.pcm import write_wav

    try:
        steps = parse_script(script)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--script") from exc
    host, _, port = address.rpartition(":")
    call_uuid = uuid.uuid4()
    if caller:
        try:
            httpx.post(
                f"{api}/api/voice/pbx/calls/{call_uuid}", data={"caller": caller}, timeout=5
            ).raise_for_status()
        except httpx.HTTPError as exc:
            raise click.ClickException(f"could not announce the caller at {api}: {exc}") from exc
    try:
        result = asyncio.run(place_call(host or "127.0.0.1", int(port), steps, call_uuid=call_uuid))
    except OSError as exc:
        raise click.ClickException(f"no AudioSocket server at {address}: {exc}") from exc
    for heard in result.heard:
        click.echo(f"{heard.at_s:6.2f} s  heard {len(heard.pcm) / 16000:5.2f} s of audio")
    click.echo("the hotline hung up" if result.hung_up_by_server else "we hung up")
    if save is not None:
        write_wav(save, result.audio, 8000)
        click.echo(f"saved {save}")
    sys.exit(0)
