"""Lobby kiosk: queue engine, ESC/POS printing, call display, form samples.

Not built yet (issues #5 and #6). Departments, windows and number prefixes come from
``knowledge_base/sample/centre.yml`` through ``knowledge_base.source.Catalog``.
"""
