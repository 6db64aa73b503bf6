"""Warm question latency, index build time and memory of the serving process.

    python bench/kb_latency.py [--chunks 20000] [--skip-large]

1. Sample knowledge base, in process: p50/p95 of KnowledgeBase.ask over the questions of the
   dev and held-out sets (after a warm-up).
2. A generated knowledge base of about N chunks (FAQ entries written from the sample's own
   sentences, so the vocabulary and posting lengths are realistic): the time to build its
   index from an empty data directory, then a real `banshi serve` process on it: p50/p95 of
   POST /api/kb/ask over HTTP and the server's resident memory (VmRSS) afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from banshi.settings import SAMPLE_KB_DIR
from bench._common import BENCH_DATA, knowledge_base, percentile
from knowledge_base.source import load_folder

ROOT = Path(__file__).resolve().parent.parent


def questions() -> list[str]:
    out = []
    for name in ("kb_dev.jsonl", "kb_heldout.jsonl"):
        for line in (BENCH_DATA / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                out.append(json.loads(line)["question"])
    return out


def report(label: str, millis: list[float]) -> None:
    print(
        f"  {label}: p50 {percentile(millis, 50):.1f} ms, p95 {percentile(millis, 95):.1f} ms,"
        f" max {max(millis):.1f} ms over {len(millis)} questions"
    )


def generate_source(folder: Path, target_chunks: int, seed: int = 7) -> int:
    """Copy the sample and add FAQ entries until the knowledge base has ~target chunks."""
    import shutil

    shutil.copytree(SAMPLE_KB_DIR, folder)
    sample = load_folder(SAMPLE_KB_DIR)
    rng = random.Random(seed)
    sentences = [
        s
        for d in sample.documents
        for text in (
            [sec["text"] for sec in d.data.get("sections", [])]
            + [d.data.get("answer", ""), d.data.get("body", "")]
        )
        for s in re.split(r"(?<=[。；！？])", text)
        if 8 <= len(s) <= 80
    ]
    faqs = [d.data for d in sample.documents if d.kind == "faq"]
    per_entry = 3  # a question and two variants
    existing = 1545
    entries = []
    for n in range(max(0, (target_chunks - existing) // per_entry)):
        base = rng.choice(faqs)
        topic = rng.choice(sentences)[:12]
        q = f"{base['question'].rstrip('？?')}，{topic}（第{n}问）？"
        entries.append(
            {
                "item": base["item"],
                "question": q,
                "variants": [
                    f"{v}（{n}）"
                    for v in rng.sample(
                        base["variants"] or [q], k=min(2, len(base["variants"] or [q]))
                    )
                ],
                "answer": "".join(rng.sample(sentences, 3)),
            }
        )
    (folder / "faq" / "generated.yml").write_text(
        yaml.safe_dump(entries, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return len(entries)


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_and_measure(data_dir: Path, source: Path, qs: list[str], encoder: str | None) -> None:
    port = free_port()
    env = {
        **os.environ,
        **({"BANSHI_KB_ENCODER": encoder} if encoder else {}),
        "BANSHI_DATA_DIR": str(data_dir),
        "BANSHI_KB_SOURCE_DIR": str(source),
        "BANSHI_PORT": str(port),
    }
    proc = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "banshi"), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).json()["status"] != "down":
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.5)
        else:
            raise SystemExit("server did not become healthy")
        print(f"  server started; resident memory before questions: {rss_mb(proc.pid):.0f} MB")
        with httpx.Client(base_url=url, timeout=30) as client:
            for q in qs[:20]:
                client.post("/api/kb/ask", json={"question": q})
            millis = []
            for q in qs:
                started = time.perf_counter()
                r = client.post("/api/kb/ask", json={"question": q})
                millis.append((time.perf_counter() - started) * 1000)
                r.raise_for_status()
        report("HTTP POST /api/kb/ask", millis)
        print(f"  serving process resident memory: {rss_mb(proc.pid):.0f} MB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=20000)
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--encoder", default=None, help="default: BANSHI_KB_ENCODER or use-m3")
    args = ap.parse_args()
    qs = questions()

    print("sample knowledge base (in process)")
    kb = knowledge_base(args.encoder)
    print(f"  {len(kb.docs)} documents, {len(kb.index)} chunks, encoder {kb.encoder.name}")
    for q in qs[:20]:
        kb.ask(q)
    millis = []
    for q in qs:
        started = time.perf_counter()
        kb.ask(q)
        millis.append((time.perf_counter() - started) * 1000)
    report("KnowledgeBase.ask", millis)
    if args.skip_large:
        return

    print(f"generated knowledge base (~{args.chunks} chunks)")
    work = Path(tempfile.mkdtemp(prefix="kbbig"))
    source = work / "source"
    added = generate_source(source, args.chunks)
    data = work / "data"
    started = time.perf_counter()
    big = knowledge_base(args.encoder, source=source, data_dir=data)
    build = time.perf_counter() - started
    print(
        f"  {len(big.docs)} documents ({added} generated FAQ entries), {len(big.index)} chunks;"
        f" index built from scratch in {build:.0f} s ({len(big.index) / build:.0f} chunks/s)"
    )
    del big
    serve_and_measure(data, source, qs, args.encoder)


if __name__ == "__main__":
    main()
