"""Lobby kiosk (大厅): the queue and everything around it.

- ``kiosk.queue``: queue.yml (services per department, quotas, rules), issuing numbers
  (walk-in, appointment check-in), counters calling, estimates (``QueueDesk``).
- ``kiosk.printing``: ESC/POS tickets and checklists, printer connections and state.
- ``kiosk.display`` / ``kiosk.announce`` / ``kiosk.tts``: the hall display (SSE) and the
  spoken calls (pyttsx3 + espeak-ng, cached).
- ``kiosk.api`` / ``kiosk.pages``: HTTP for kiosks, phones and counters; the pages.

Form samples (样表) come with issue #6.
"""
