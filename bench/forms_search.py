"""Form sample search latency over a large library, and the time to draw a form.

    python bench/forms_search.py [--forms 500] [--queries 2000] [--render 0]

1. Search: ``--forms`` definitions generated from the shipped ones (each shipped form copied
   under other titles, as a real library has 变更 / 注销 / 补办 variants of a form), stored
   through FormLibrary into a fresh SQLite database; then p50/p95/p99 of FormLibrary.search
   (what GET /api/forms runs) over a mix of queries residents type: pinyin initials, full
   pinyin with and without tones, Chinese words, two-letter prefixes, traditional characters.
2. Render: each shipped form drawn as the filled-in PDF, the filled-in PNG (1240 px) and the
   thumbnail; p50 and max per kind. ``--render N`` limits it to N forms (0: all).
"""

from __future__ import annotations

import argparse
import copy
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from banshi.db import Database
from banshi.settings import SAMPLE_KB_DIR
from bench._common import percentile
from kiosk.forms.definition import parse_definition
from kiosk.forms.library import FormLibrary, definitions_in, departments_and_items
from knowledge_base.source import Catalog

VARIANTS = [
    "",
    "（变更）",
    "（注销）",
    "（补办）",
    "（延续）",
    "（个人）",
    "（单位）",
    "（委托代办）",
]
PLACES = ["", "青禾区", "城东街道", "城西街道", "开发区", "高新区"]
QUERIES = {
    "initials": ["jzz", "sbk", "gjj", "jhdj", "dbsq", "gtgsh", "yyzz", "hk", "ylbx", "bdc"],
    "full pinyin": ["juzhuzheng", "shebaoka", "gongjijin", "jiehun", "dibao", "hukou", "tuixiu"],
    "tones": ["jūzhùzhèng", "shè bǎo kǎ", "ju2zhu4zheng4", "hu4kou3"],
    "chinese": [
        "居住证",
        "公积金提取",
        "结婚",
        "低保",
        "营业执照",
        "户口迁移",
        "失业",
        "提取公积金",
    ],
    "prefix": ["ju", "sh", "zh", "gs", "yi"],
    "traditional": ["居住證", "戶口", "營業執照"],
}


def generate(count: int, shipped: list[dict]) -> list[dict]:
    rng = random.Random(7)
    out = []
    i = 0
    while len(out) < count:
        base = copy.deepcopy(shipped[i % len(shipped)])
        n = i // len(shipped)
        if n:
            base["id"] = f"{base['id'][:50]}-{n}"
            base["title"] = f"{rng.choice(PLACES)}{base['title']}{VARIANTS[n % len(VARIANTS)]}"
            base["tags"] = [*base["tags"], rng.choice(["变更", "注销", "补办", "代办", "延期"])]
        out.append(base)
        i += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forms", type=int, default=500)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--render", type=int, default=0, help="forms to draw (0: all shipped)")
    args = parser.parse_args()

    catalog = Catalog.load(SAMPLE_KB_DIR)
    departments, items = departments_and_items(catalog)
    shipped = [data for _p, data in definitions_in(SAMPLE_KB_DIR / "forms")]
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/bench.db")
        db.upgrade()
        library = FormLibrary(db, departments, items, None, Path(tmp) / "cache")
        t0 = time.perf_counter()
        for data in generate(args.forms, shipped):
            library.store(data, "bench", "bench", refresh=False)
        stored = time.perf_counter() - t0
        t0 = time.perf_counter()
        library.refresh(force=True)  # a process starting: every form parsed and indexed
        built = time.perf_counter() - t0
        changed = copy.deepcopy(shipped[0])
        changed["summary"] = "本表2027年起换新版。"
        library.store(changed, "bench", "bench", refresh=False)
        t0 = time.perf_counter()
        library.refresh(force=True)  # what every kiosk process does after an upload
        after_upload = time.perf_counter() - t0
        print(
            f"library: {library.count()} forms; stored in {stored:.1f} s; snapshot + index "
            f"built in {built * 1000:.0f} ms, rebuilt after one upload in "
            f"{after_upload * 1000:.0f} ms"
        )

        rng = random.Random(1)
        mix = [(kind, q) for kind, qs in QUERIES.items() for q in qs]
        for _kind, q in mix:  # warm-up (pypinyin, OpenCC load lazily)
            library.search(q)
        times: dict[str, list[float]] = {k: [] for k in QUERIES}
        empty = 0
        for _ in range(args.queries):
            kind, q = rng.choice(mix)
            t0 = time.perf_counter()
            found = library.search(q)
            times[kind].append((time.perf_counter() - t0) * 1000)
            empty += not found
        every = [t for ts in times.values() for t in ts]
        print(
            f"search over {library.count()} forms, {args.queries} queries "
            f"({empty} found nothing), ms:"
        )
        for kind, ts in [*times.items(), ("all", every)]:
            print(
                f"  {kind:12s} p50 {percentile(ts, 50):6.2f}  p95 {percentile(ts, 95):6.2f}  "
                f"p99 {percentile(ts, 99):6.2f}  (n={len(ts)})"
            )
        goal = percentile(every, 95)
        print(f"goal p95 < 30 ms: {'met' if goal < 30 else 'NOT met'} ({goal:.2f} ms)")
        db.dispose()

    from kiosk.forms import render

    forms = [parse_definition(d, departments, items) for d in shipped]
    forms = forms[: args.render] if args.render else forms
    drawn: dict[str, list[float]] = {"pdf (sample)": [], "png (sample)": [], "thumbnail": []}
    for form in forms:
        for kind, draw in (
            ("pdf (sample)", lambda f: render.render_pdf(f, True)),
            ("png (sample)", lambda f: render.render_png(f, True)),
            ("thumbnail", render.render_thumbnail),
        ):
            t0 = time.perf_counter()
            draw(form)
            drawn[kind].append((time.perf_counter() - t0) * 1000)
    print(f"render, {len(forms)} forms, ms:")
    for kind, ts in drawn.items():
        print(f"  {kind:13s} p50 {percentile(ts, 50):6.1f}  max {max(ts):6.1f}")


if __name__ == "__main__":
    main()
