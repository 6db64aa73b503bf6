"""Form samples (电子样表): definitions we write as data (definition.py), the library that
serves and versions them (library.py), pinyin search (search.py), rendering to PDF and PNG
(render.py) and printing (printing.py)."""
