"""ESC/POS printing for the lobby kiosk, on python-escpos (extra ``kiosk``).

- ``ticket``: the queue ticket (:class:`QueueTicketPrint`) and its 58/80 mm layout;
  ``checklist``: a numbered field checklist (:class:`FieldChecklistPrint`).
- ``layout``: paper widths, display width and wrapping, Chinese as GB18030 in the
  printer's Chinese mode (``FS &`` … ``FS .``).
- ``connection``: ``BANSHI_KIOSK_PRINTER`` (network, usb, serial, file, dummy) → a printer;
  ``printers``: the file (append), network and serial printer classes it opens.
- ``status``: the real-time status check (``DLE EOT n``) and what to tell residents.
- ``service``: :func:`print_ticket` — check, then the whole job in one write.

Only ``printers`` imports python-escpos at its top, and it is imported when a printer is
opened; everything else imports it inside the functions that need it.
"""
