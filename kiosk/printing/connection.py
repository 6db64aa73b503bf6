"""Which printer, from ``BANSHI_KIOSK_PRINTER``: parsed here, opened by python-escpos.

    network://192.0.2.10:9100        raw TCP (port 9100 by default)
    usb://0x0416:0x5011              vendor and product id; ?in_ep=0x81&out_ep=0x03
    serial:///dev/ttyUSB0?baudrate=9600
    file:///var/spool/kiosk/out.bin  every job's raw ESC/POS bytes appended to the file
    dummy://                         in memory, nothing printed (the default)

Options: ``timeout`` (seconds, network/serial/usb; default 3) and ``status=off`` for a
printer that cannot answer the real-time status query. Parsing imports nothing heavy, so
settings can validate the value; python-escpos is imported only when a printer is opened.

One URL is every kiosk's printer; a lobby where each kiosk has its own names them per
kiosk (kiosk/per_kiosk.py), ``*`` for the kiosks not listed (without it they have none)::

    K01=network://10.0.0.21,K02=usb://0x0416:0x5011,*=network://10.0.0.30
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

from kiosk.per_kiosk import KioskMapError, is_mapping, parse_per_kiosk

if TYPE_CHECKING:
    from escpos.escpos import Escpos

SETTING = "BANSHI_KIOSK_PRINTER"
EXAMPLES = (
    "network://HOST[:9100], usb://0x0416:0x5011, serial:///dev/ttyUSB0?baudrate=9600, "
    "file:///path/out.bin or dummy://"
)
PrinterKind = Literal["network", "usb", "serial", "file", "dummy"]
_OPTIONS: dict[str, set[str]] = {
    "network": {"timeout", "status"},
    "usb": {"timeout", "status", "in_ep", "out_ep"},
    "serial": {"timeout", "status", "baudrate"},
    "file": set(),
    "dummy": set(),
}


class PrinterUrlError(ValueError):
    pass


@dataclass(frozen=True)
class PrinterConfig:
    kind: PrinterKind
    host: str = ""
    port: int = 9100
    vendor_id: int = 0
    product_id: int = 0
    in_ep: int | None = None  # None: python-escpos's defaults (0x82 in, 0x01 out)
    out_ep: int | None = None
    path: str = ""  # serial device or output file
    baudrate: int = 9600
    timeout_s: float = 3.0  # a kiosk cannot wait python-escpos's default minute
    check_status: bool = True

    @property
    def name(self) -> str:
        """Readable, for messages and logs."""
        if self.kind == "network":
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"network {host}:{self.port}"
        if self.kind == "usb":
            return f"usb {self.vendor_id:#06x}:{self.product_id:#06x}"
        if self.kind in ("serial", "file"):
            return f"{self.kind} {self.path}"
        return "dummy"

    def open(self) -> Escpos:
        """A new, not yet connected printer object (it connects on first use): one per
        job, so a connection that died between jobs is never reused."""
        if self.kind == "network":
            from kiosk.printing.printers import TcpPrinter

            return TcpPrinter(self.host, self.port, timeout=self.timeout_s)
        if self.kind == "usb":
            from escpos.printer import Usb

            endpoints = {
                k: v for k, v in (("in_ep", self.in_ep), ("out_ep", self.out_ep)) if v is not None
            }
            timeout_ms = int(self.timeout_s * 1000)  # pyusb counts milliseconds
            return Usb(self.vendor_id, self.product_id, timeout=timeout_ms, **endpoints)
        if self.kind == "serial":
            from kiosk.printing.printers import SerialPrinter

            return SerialPrinter(devfile=self.path, baudrate=self.baudrate, timeout=self.timeout_s)
        if self.kind == "file":
            from kiosk.printing.printers import AppendFile

            return AppendFile(self.path)
        from escpos.printer import Dummy

        return Dummy()


def parse_printer_url(url: str) -> PrinterConfig:
    """``BANSHI_KIOSK_PRINTER`` as a :class:`PrinterConfig`; a clear error naming the
    setting otherwise."""
    try:
        return _parse(url.strip())
    except PrinterUrlError as exc:
        raise PrinterUrlError(f"{SETTING}={url!r}: {exc}; expected {EXAMPLES}") from None


def parse_printer_map(spec: str) -> dict[str, PrinterConfig]:
    """``BANSHI_KIOSK_PRINTER`` as kiosk -> printer: one URL is ``{"*": config}`` (every
    kiosk), ``K01=URL,K02=URL,*=URL`` one per kiosk. An error names the wrong entry."""
    if not is_mapping(spec.strip()):
        return {"*": parse_printer_url(spec)}  # its message as ever
    try:
        return parse_per_kiosk(spec, lambda url: _parse(url.strip()))
    except KioskMapError as exc:
        raise PrinterUrlError(
            f"{SETTING} {exc}; expected KIOSK=URL pairs separated by commas ('*' for the "
            f"kiosks not listed), each URL {EXAMPLES}"
        ) from None


def kiosks_by_printer(printers: dict[str, PrinterConfig]) -> dict[PrinterConfig, list[str]]:
    """Each distinct printer and the kiosks it serves (``*`` last): two kiosks whose URLs
    say the same printer (``network://h`` and ``network://h:9100``) share it."""
    shared: dict[PrinterConfig, list[str]] = {}
    for kiosk in sorted(printers, key=lambda k: (k == "*", k)):
        shared.setdefault(printers[kiosk], []).append(kiosk)
    return shared


def _parse(url: str) -> PrinterConfig:
    parts = urlsplit(url)
    kind = parts.scheme.lower()
    if not kind:
        raise PrinterUrlError("the connection kind is missing at the start")
    if kind not in _OPTIONS:
        raise PrinterUrlError(f"unknown connection {kind!r}")
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(options) - _OPTIONS[kind])
    if unknown:
        allowed = ", ".join(sorted(_OPTIONS[kind])) or "none"
        raise PrinterUrlError(f"unknown option {', '.join(unknown)} (allowed: {allowed})")
    timeout_s = _float(options.get("timeout", "3"), "timeout", 0.05, 600)
    if options.get("status", "on") not in ("on", "off"):
        raise PrinterUrlError("status must be on or off")
    check_status = options.get("status", "on") == "on"

    if kind == "network":
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:  # a port that is not a number
            raise PrinterUrlError(f"bad port ({exc})") from None
        if not host or parts.path not in ("", "/"):
            raise PrinterUrlError("network needs a host and nothing after it, network://HOST:PORT")
        return PrinterConfig(
            "network",
            host=host,
            port=port or 9100,
            timeout_s=timeout_s,
            check_status=check_status,
        )
    if kind == "usb":
        ids = parts.netloc.split(":")
        if len(ids) != 2 or parts.path not in ("", "/"):
            raise PrinterUrlError("usb needs vendor and product id, usb://0x0416:0x5011")
        return PrinterConfig(
            "usb",
            vendor_id=_int(ids[0], "vendor id", 1, 0xFFFF),
            product_id=_int(ids[1], "product id", 1, 0xFFFF),
            in_ep=_int(options["in_ep"], "in_ep", 0, 0xFF) if "in_ep" in options else None,
            out_ep=_int(options["out_ep"], "out_ep", 0, 0xFF) if "out_ep" in options else None,
            timeout_s=timeout_s,
            check_status=check_status,
        )
    if kind == "serial":
        device = unquote(parts.netloc + parts.path)  # serial:///dev/ttyUSB0 or serial://COM3
        if not device:
            raise PrinterUrlError("serial needs a device, serial:///dev/ttyUSB0")
        return PrinterConfig(
            "serial",
            path=device,
            baudrate=_int(options.get("baudrate", "9600"), "baudrate", 300, 4_000_000),
            timeout_s=timeout_s,
            check_status=check_status,
        )
    if kind == "file":
        if parts.netloc:
            raise PrinterUrlError(
                "file needs three slashes before an absolute path (file:///tmp/out.bin) "
                "or none before a relative one (file:out.bin)"
            )
        if not parts.path:
            raise PrinterUrlError("file needs a path, file:///tmp/out.bin")
        return PrinterConfig("file", path=unquote(parts.path))
    if parts.netloc or parts.path:
        raise PrinterUrlError("dummy takes nothing after it, dummy://")
    return PrinterConfig("dummy")


def _int(text: str, what: str, low: int, high: int) -> int:
    try:
        value = int(text, 0)  # 0x0416 and 1046 alike
    except ValueError:
        raise PrinterUrlError(f"{what} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise PrinterUrlError(f"{what} must be between {low} and {high}, not {text}")
    return value


def _float(text: str, what: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PrinterUrlError(f"{what} must be a number, not {text!r}") from None
    if not low <= value <= high:  # also refuses nan
        raise PrinterUrlError(f"{what} must be between {low:g} and {high:g}, not {text}")
    return value


def describe(printer: Escpos) -> str:
    """A readable name for any python-escpos printer object (for a factory that is not a
    :class:`PrinterConfig`)."""
    if hasattr(printer, "host"):
        return f"network {printer.host}:{getattr(printer, 'port', 9100)}"
    if hasattr(printer, "usb_args"):
        ids = printer.usb_args
        return f"usb {ids.get('idVendor', 0):#06x}:{ids.get('idProduct', 0):#06x}"
    if hasattr(printer, "baudrate"):
        return f"serial {getattr(printer, 'devfile', '')}"
    if hasattr(printer, "path") or hasattr(printer, "devfile"):
        return f"file {getattr(printer, 'path', '') or getattr(printer, 'devfile', '')}"
    return type(printer).__name__.lower()
