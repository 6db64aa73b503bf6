"""Lobby kiosk (大厅取号机).

Built so far: ESC/POS printing of queue tickets and field checklists (``kiosk.printing``:
layout for 58/80 mm paper, Chinese in the printer's GB18030 mode, connections chosen by
``BANSHI_KIOSK_PRINTER``, the printer's state checked before each job), the errors
``KioskError`` / ``PrinterUnavailable`` (``kiosk.errors``) and ``banshi kiosk print-test``
(``kiosk.cli``).

Not built yet (issues #5 and #6): the queue engine, appointments, counters, the call
display and the touchscreen UI. Departments, windows and number prefixes come from
``knowledge_base/sample/centre.yml`` through ``knowledge_base.source.Catalog``.
"""
