"""Runs in Rasa's environment (.venv-rasa): parse utterances with a trained model.

Reads JSON lines {"text": ...} on standard input, writes one line per input:
{"text", "intent", "confidence", "entities": [{"entity", "value", "start", "end"}]}.
Used by `banshi rasa parse --jsonl` and the intent benchmark; keep the output exact.
"""

import asyncio
import json
import logging
import sys


def main(model: str) -> None:
    logging.disable(logging.WARNING)
    out, sys.stdout = sys.stdout, sys.stderr  # whatever Rasa prints must not mix with results
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    loop = asyncio.new_event_loop()
    for line in sys.stdin:
        if not line.strip():
            continue
        text = json.loads(line)["text"]
        parsed = loop.run_until_complete(agent.parse_message(text))
        intent = parsed.get("intent") or {}
        result = {
            "text": text,
            "intent": intent.get("name"),
            "confidence": round(float(intent.get("confidence") or 0.0), 4),
            "entities": [
                {k: e.get(k) for k in ("entity", "value", "start", "end")}
                for e in parsed.get("entities", [])
            ],
        }
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
        out.flush()


if __name__ == "__main__":
    main(sys.argv[1])
