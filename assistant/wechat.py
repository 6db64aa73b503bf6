"""The WeChat Official Account (公众号) protocol: signatures, incoming XML, passive replies,
safe mode (AES) and the customer-service message API. No HTTP routing here (see
``assistant/wechat_api.py``); everything but the API client is plain, synchronous code.

Protocol facts (all from WeChat's public developer documentation):

- every callback carries ``signature`` = sha1 of the sorted, concatenated token, timestamp
  and nonce; safe mode adds ``msg_signature`` over token, timestamp, nonce and the
  ``<Encrypt>`` text;
- a passive reply is a text XML with the user and the account swapped; WeChat waits 5 s and
  takes ``success`` (or an empty body) as "no reply";
- safe mode is AES-256-CBC with key = base64(aes_key + "="), IV = key[:16], PKCS#7 padding
  to 32 bytes, plaintext = 16 random bytes + 4-byte big-endian length + XML + app id;
- text content is limited to 2048 bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import html
import logging
import os
import re
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol
from xml.etree.ElementTree import ParseError

import httpx
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from assistant.models import WeChatToken

if TYPE_CHECKING:
    from banshi.db import Database

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024  # a WeChat callback is well under 4 KB; anything this big is not one
TEXT_LIMIT_BYTES = 2048  # WeChat's limit for the content of a text message
ELLIPSIS = "…"
HUMAN_HINT = "回复“转人工”联系工作人员"
ASK_NEXT = "您可以接着问："
RATINGS = ("非常满意", "满意", "不满意")  # 回访 buttons: replies, not questions
TYPE_ONE = "您可以直接回复："
_BLOCK = 32  # WeChat pads to 32 bytes, not to AES's 16
_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class WeChatError(Exception):
    """Something WeChat (or someone pretending to be WeChat) sent that we cannot accept."""


class BadMessage(WeChatError):
    """The body is not a WeChat message XML (malformed, too big, DTD or entities)."""


class CryptoError(WeChatError):
    """A safe-mode message that does not decrypt, or was encrypted for another app id."""


# -- signatures ------------------------------------------------------------------------------
def make_signature(*parts: str) -> str:
    """sha1 hex of the parts, sorted and concatenated (WeChat's signature scheme)."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def check_signature(token: str, signature: str, timestamp: str, nonce: str) -> bool:
    """The ``signature`` query parameter of every callback, compared in constant time."""
    if not token or not signature:
        return False
    expected = make_signature(token, timestamp, nonce)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


def check_msg_signature(
    token: str, signature: str, timestamp: str, nonce: str, encrypt: str
) -> bool:
    """Safe mode's ``msg_signature`` (also covers the encrypted text)."""
    if not token or not signature:
        return False
    expected = make_signature(token, timestamp, nonce, encrypt)
    return hmac.compare_digest(expected.encode(), signature.strip().lower().encode())


# -- incoming XML ----------------------------------------------------------------------------
def parse_fields(body: bytes | str) -> dict[str, str]:
    """The top-level elements of a callback ``<xml>`` as text. Refuses DTDs, entities and
    external references (defusedxml) and bodies over :data:`MAX_BODY_BYTES`."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise BadMessage(f"body of {len(raw)} bytes is over the {MAX_BODY_BYTES}-byte limit")
    if not raw.strip():
        raise BadMessage("empty body")
    try:
        root = fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise BadMessage(f"refused XML: {type(exc).__name__}") from exc
    except (ParseError, ValueError) as exc:
        raise BadMessage(f"malformed XML: {exc}") from exc
    if root.tag != "xml":
        raise BadMessage(f"root element is <{root.tag}>, expected <xml>")
    fields: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str) and child.tag not in fields:
            fields[child.tag] = child.text or ""
    return fields


@dataclass(frozen=True)
class Message:
    """One callback: a user message or an event. Missing fields are empty strings."""

    to_user: str  # our account (the original ID, gh_...)
    from_user: str  # the sender's OpenID
    create_time: int
    msg_type: str  # lower case: text, voice, image, video, shortvideo, location, link, event, ...
    msg_id: str = ""
    content: str = ""
    recognition: str = ""  # voice, when 语音识别 is switched on
    event: str = ""  # lower case: subscribe, unsubscribe, scan, click, view, ...
    event_key: str = ""
    media_id: str = ""
    format: str = ""
    encrypt: str = ""  # safe mode: the encrypted inner message
    fields: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def dedupe_id(self) -> str:
        """What identifies a retry: the MsgId; for events (none) the sender and CreateTime."""
        if self.msg_id and self.msg_type != "event":
            key = self.msg_id
        else:
            key = f"{self.from_user}-{self.create_time}"
        # external ids are stored in 64 characters
        return key if len(key) <= 64 else hashlib.sha1(key.encode()).hexdigest()


def parse_message(body: bytes | str) -> Message:
    f = parse_fields(body)

    def text(name: str) -> str:
        return f.get(name, "").strip()

    created = text("CreateTime")
    return Message(
        to_user=text("ToUserName"),
        from_user=text("FromUserName"),
        create_time=int(created) if created.isdigit() else 0,
        msg_type=text("MsgType").lower(),
        msg_id=text("MsgId") or text("MsgID"),
        content=f.get("Content", ""),
        recognition=f.get("Recognition", "").strip(),
        event=text("Event").lower(),
        event_key=text("EventKey"),
        media_id=text("MediaId"),
        format=text("Format"),
        encrypt=text("Encrypt"),
        fields=f,
    )


# -- passive replies -------------------------------------------------------------------------
def cdata(value: str) -> str:
    """A CDATA section for any text: characters XML cannot carry are dropped and "]]>" is
    split across two sections."""
    value = _INVALID_XML_CHARS.sub("", value)
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply_xml(incoming: Message, content: str, create_time: int | None = None) -> str:
    """The passive text reply to ``incoming`` (ToUserName/FromUserName swapped)."""
    created = int(time.time()) if create_time is None else create_time
    return (
        "<xml>\n"
        f"<ToUserName>{cdata(incoming.from_user)}</ToUserName>\n"
        f"<FromUserName>{cdata(incoming.to_user)}</FromUserName>\n"
        f"<CreateTime>{created}</CreateTime>\n"
        "<MsgType><![CDATA[text]]></MsgType>\n"
        f"<Content>{cdata(content)}</Content>\n"
        "</xml>"
    )


def _absolute(url: str, public_url: str) -> str | None:
    if url.startswith(("https://", "http://")):
        return url
    if not public_url:
        return None  # a relative link means nothing inside WeChat
    return public_url.rstrip("/") + "/" + url.lstrip("/")


def _is_human(button: dict[str, Any]) -> bool:
    return str(button.get("title", "")).strip() == "转人工" or button.get("payload") == (
        "/request_human"
    )


def render_text(messages: list[dict[str, Any]], public_url: str = "") -> str:
    """Our messages as one WeChat text: the texts, follow-up questions, options to type,
    guide links (absolute, only when ``public_url`` is known) and the hint for a person.
    WeChat has no buttons in a passive text reply, so what a button would send must be
    typed: question buttons are listed as questions, intent buttons (payload "/...") by the
    title the resident can type, and "转人工" becomes a hint."""
    blocks: list[str] = []
    human = False
    for m in messages:
        lines = [str(m.get("text") or "").strip()]
        questions: list[str] = []
        options: list[str] = []
        for b in m.get("buttons") or []:
            title = str(b.get("title") or "").strip()
            if _is_human(b):
                human = True
            elif not title:
                continue
            elif str(b.get("payload") or "").startswith("/") or title in RATINGS:
                # an intent payload cannot be typed, its title can; a rating is an answer
                options.append(title)
            else:
                questions.append(title)
        if questions:
            lines.append(ASK_NEXT + "".join(f"\n· {q}" for q in questions))
        if options:
            lines.append(TYPE_ONE + "".join(f"\n· {o}" for o in options))
        for link in m.get("links") or []:
            url = _absolute(str(link.get("url") or ""), public_url)
            if url:
                title = html.escape(str(link.get("title") or url), quote=False)
                lines.append(f'<a href="{html.escape(url, quote=True)}">{title}</a>')
        block = "\n".join(line for line in lines if line)
        if block:
            blocks.append(block)
    if human:
        blocks.append(HUMAN_HINT)
    return fit(_INVALID_XML_CHARS.sub("", "\n\n".join(blocks)))


def fit(text: str, limit: int = TEXT_LIMIT_BYTES) -> str:
    """``text`` within ``limit`` UTF-8 bytes, cut at a character (never inside a link) and
    ended with "…"."""
    if len(text.encode()) <= limit:
        return text
    room = limit - len(ELLIPSIS.encode())
    cut = text.encode()[:room].decode("utf-8", errors="ignore")
    opened = cut.rfind("<a ")
    if opened > cut.rfind("</a>"):
        cut = cut[:opened]  # do not leave half a link
    return cut.rstrip() + ELLIPSIS


# -- safe mode -------------------------------------------------------------------------------
class WeChatCrypto:
    """Safe-mode (加密模式) messages for one account."""

    def __init__(self, token: str, aes_key: str, app_id: str) -> None:
        if len(aes_key) != 43:
            raise ValueError("the WeChat EncodingAESKey has 43 characters")
        try:
            key = base64.b64decode(aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("the WeChat EncodingAESKey is not base64") from exc
        if len(key) != 32:
            raise ValueError("the WeChat EncodingAESKey does not decode to 32 bytes")
        self.token = token
        self.app_id = app_id
        self._key = key
        self._iv = key[:16]

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._iv))

    def encrypt(self, xml: str | bytes, random_prefix: bytes | None = None) -> str:
        """Base64 of the encrypted XML (with our app id), as it goes into ``<Encrypt>``."""
        data = xml.encode() if isinstance(xml, str) else xml
        prefix = os.urandom(16) if random_prefix is None else random_prefix
        if len(prefix) != 16:
            raise ValueError("the random prefix has 16 bytes")
        plain = prefix + struct.pack(">I", len(data)) + data + self.app_id.encode()
        pad = _BLOCK - len(plain) % _BLOCK
        plain += bytes([pad]) * pad
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode()

    def decrypt(self, encrypted: str) -> bytes:
        """The XML inside ``<Encrypt>``; refuses another app id's messages."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CryptoError("the Encrypt text is not base64") from exc
        if not data or len(data) % 16:
            raise CryptoError("the Encrypt text is not whole AES blocks")
        dec = self._cipher().decryptor()
        plain = dec.update(data) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CryptoError("bad padding (wrong EncodingAESKey?)")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise CryptoError("decrypted message too short")
        (length,) = struct.unpack(">I", plain[16:20])
        xml, app_id = plain[20 : 20 + length], plain[20 + length :]
        if len(xml) != length:
            raise CryptoError("decrypted length does not match")
        if not hmac.compare_digest(app_id, self.app_id.encode()):
            raise CryptoError(f"message is for app id {app_id.decode(errors='replace')!r}")
        return xml

    def decrypt_message(
        self, body: bytes | str, msg_signature: str, timestamp: str, nonce: str
    ) -> bytes:
        """The inner XML of a safe-mode callback, after checking ``msg_signature``."""
        encrypted = parse_fields(body).get("Encrypt", "").strip()
        if not encrypted:
            raise BadMessage("safe-mode body without <Encrypt>")
        if not check_msg_signature(self.token, msg_signature, timestamp, nonce, encrypted):
            raise CryptoError("msg_signature does not match")
        return self.decrypt(encrypted)

    def encrypt_reply(self, xml: str, nonce: str, timestamp: str | None = None) -> str:
        """A passive reply in the safe-mode envelope."""
        ts = timestamp or str(int(time.time()))
        encrypted = self.encrypt(xml)
        signature = make_signature(self.token, ts, nonce, encrypted)
        return (
            "<xml>\n"
            f"<Encrypt>{cdata(encrypted)}</Encrypt>\n"
            f"<MsgSignature>{cdata(signature)}</MsgSignature>\n"
            f"<TimeStamp>{ts}</TimeStamp>\n"
            f"<Nonce>{cdata(nonce)}</Nonce>\n"
            "</xml>"
        )


# -- customer-service messages (客服消息) -------------------------------------------------
TOKEN_EXPIRED = {40001, 40014, 42001}  # invalid / expired access token: fetch a new one
TOKEN_MARGIN_S = 300  # refresh this long before WeChat says the token expires
TOKEN_POLL_S = 0.2  # how often a process waiting for another's fetch looks again


class WeChatApiError(RuntimeError):
    def __init__(self, what: str, errcode: int | None = None, errmsg: str = "") -> None:
        super().__init__(f"{what}: errcode={errcode} errmsg={errmsg}" if errcode else what)
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass(frozen=True)
class StoredToken:
    """The shared access token of an app id; moments are epoch seconds (0: none)."""

    token: str = ""
    refresh_after: float = 0.0  # fetch a new one from then on (TOKEN_MARGIN_S early)
    expires_at: float = 0.0  # WeChat's end of validity: usable until then
    lease_until: float = 0.0  # someone is fetching a new one until then


class TokenStore(Protocol):
    """Where the access token is kept for everyone who uses the app id. Fetching a new
    token invalidates the old one (WeChat keeps only the latest, with a short overlap),
    so one fetcher at a time: :meth:`claim` is a compare-and-set on the token seen and a
    free lease. Blocking calls (run in a thread)."""

    def read(self, app_id: str) -> StoredToken: ...

    def claim(self, app_id: str, seen: str, owner: str, now: float, until: float) -> bool:
        """Take the lease if the stored token is still ``seen`` and no lease is held."""
        ...

    def save(
        self, app_id: str, owner: str, token: str, refresh_after: float, expires_at: float
    ) -> bool:
        """Store the new token and free the lease, if ``owner`` still holds it."""
        ...

    def release(self, app_id: str, owner: str) -> None:
        """Free ``owner``'s lease (its fetch failed)."""
        ...


class MemoryTokenStore:
    """One process's token (no database given, e.g. the webhook on its own)."""

    def __init__(self) -> None:
        self._rows: dict[str, StoredToken] = {}
        self._owners: dict[str, str] = {}
        self._lock = threading.Lock()

    def read(self, app_id: str) -> StoredToken:
        with self._lock:
            return self._rows.get(app_id, StoredToken())

    def claim(self, app_id: str, seen: str, owner: str, now: float, until: float) -> bool:
        with self._lock:
            row = self._rows.get(app_id, StoredToken())
            if row.token != seen or row.lease_until > now:
                return False
            self._rows[app_id] = replace(row, lease_until=until)
            self._owners[app_id] = owner
            return True

    def save(
        self, app_id: str, owner: str, token: str, refresh_after: float, expires_at: float
    ) -> bool:
        with self._lock:
            if self._owners.get(app_id) != owner:
                return False
            self._rows[app_id] = StoredToken(token, refresh_after, expires_at)
            del self._owners[app_id]
            return True

    def release(self, app_id: str, owner: str) -> None:
        with self._lock:
            if self._owners.get(app_id) == owner:
                del self._owners[app_id]
                self._rows[app_id] = replace(self._rows[app_id], lease_until=0.0)


class DatabaseTokenStore:
    """The token in the ``wechat_tokens`` table: one row per app id, for every API process
    on the database (SQLite in the embedded mode, PostgreSQL behind nginx). The lease is
    taken and given back by conditional UPDATEs, so no transaction stays open while WeChat
    is asked."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def read(self, app_id: str) -> StoredToken:
        row = self._select(app_id)
        if row is None:
            try:
                with self.db.session() as s:
                    s.add(WeChatToken(app_id=app_id, token="", lease_owner=""))
            except IntegrityError:
                pass  # another process made the row at the same moment
            row = self._select(app_id)
        return row or StoredToken()

    def _select(self, app_id: str) -> StoredToken | None:
        with self.db.session() as s:
            row = s.get(WeChatToken, app_id)
            if row is None:
                return None
            return StoredToken(
                row.token,
                _epoch(row.refresh_after),
                _epoch(row.expires_at),
                _epoch(row.lease_until),
            )

    def claim(self, app_id: str, seen: str, owner: str, now: float, until: float) -> bool:
        with self.db.session() as s:
            taken = s.execute(
                update(WeChatToken)
                .where(
                    WeChatToken.app_id == app_id,
                    WeChatToken.token == seen,
                    or_(WeChatToken.lease_until.is_(None), WeChatToken.lease_until <= _dt(now)),
                )
                .values(lease_owner=owner, lease_until=_dt(until))
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        return bool(taken)

    def save(
        self, app_id: str, owner: str, token: str, refresh_after: float, expires_at: float
    ) -> bool:
        with self.db.session() as s:
            saved = s.execute(
                update(WeChatToken)
                .where(WeChatToken.app_id == app_id, WeChatToken.lease_owner == owner)
                .values(
                    token=token,
                    refresh_after=_dt(refresh_after),
                    expires_at=_dt(expires_at),
                    lease_owner="",
                    lease_until=None,
                    updated_at=_dt(time.time()),
                )
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        return bool(saved)

    def release(self, app_id: str, owner: str) -> None:
        with self.db.session() as s:
            s.execute(
                update(WeChatToken)
                .where(WeChatToken.app_id == app_id, WeChatToken.lease_owner == owner)
                .values(lease_owner="", lease_until=None)
                .execution_options(synchronize_session=False)
            )


def _dt(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _epoch(moment: dt.datetime | None) -> float:
    return moment.timestamp() if moment is not None else 0.0


class CustomerServiceClient:
    """Sends answers that missed the 5-second window as customer-service text messages.

    The access token is shared through ``store`` by every process of the app id (pass a
    :class:`DatabaseTokenStore`; without one it is this client's own): one process fetches
    a new token when it is due or when WeChat refused the stored one, the others keep using
    the old one while it is still valid, or wait for the new one. A refused token is
    replaced only if it is still the stored one, so processes that saw the same refusal
    refresh once between them."""

    def __init__(
        self,
        api_base: str,
        app_id: str,
        app_secret: str,
        timeout_s: float = 10.0,
        http: httpx.AsyncClient | None = None,
        store: TokenStore | None = None,
    ) -> None:
        self.api_base = api_base.rstrip("/")
        self.app_id = app_id
        self._secret = app_secret
        self._http = http or httpx.AsyncClient(timeout=timeout_s)
        self._store: TokenStore = store or MemoryTokenStore()
        self._owner = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        # a fetch holds the lease at most this long; then another process may take over
        self._lease_s = 3 * timeout_s + 5
        self._token = ""  # this process's copy of the stored token
        self._refresh_after = 0.0
        self._lock: asyncio.Lock | None = None

    @property
    def configured(self) -> bool:
        return bool(self.app_id and self._secret)

    async def access_token(self, failed: str = "") -> str:
        """The shared token; ``failed`` is one WeChat just refused (40001 and the like):
        a new token is fetched only if that one is still the stored one."""
        if not self.configured:
            raise WeChatApiError("BANSHI_WECHAT_APP_ID and BANSHI_WECHAT_APP_SECRET are not set")
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # another caller of this process may have got a new one while we waited
            if self._token and self._token != failed and time.time() < self._refresh_after:
                return self._token
            stored = await self._shared_token(failed)
            self._token, self._refresh_after = stored.token, stored.refresh_after
            return self._token

    async def _shared_token(self, failed: str) -> StoredToken:
        deadline = time.monotonic() + self._lease_s + TOKEN_MARGIN_S / 10
        while True:
            row = await asyncio.to_thread(self._store.read, self.app_id)
            now = time.time()
            usable = bool(row.token) and row.token != failed and now < row.expires_at
            if usable and now < row.refresh_after:
                return row
            if row.lease_until <= now and await asyncio.to_thread(
                self._store.claim, self.app_id, row.token, self._owner, now, now + self._lease_s
            ):
                return await self._fetch_and_save()
            if usable:  # due, but another process is fetching: the old one still works
                return row
            if time.monotonic() > deadline:
                raise WeChatApiError("timed out waiting for another process's access token")
            await asyncio.sleep(TOKEN_POLL_S)

    async def _fetch_and_save(self) -> StoredToken:
        """With the lease: a new token from WeChat, stored for everyone."""
        try:
            token, expires_in = await self._fetch_token()
        except BaseException:
            await asyncio.to_thread(self._store.release, self.app_id, self._owner)
            raise
        now = time.time()
        fresh = StoredToken(
            token, now + max(expires_in - TOKEN_MARGIN_S, expires_in / 2), now + expires_in
        )
        saved = await asyncio.to_thread(
            self._store.save,
            self.app_id,
            self._owner,
            fresh.token,
            fresh.refresh_after,
            fresh.expires_at,
        )
        if not saved:  # the fetch outlasted the lease and another process took it over
            log.warning("WeChat access token fetched after the lease ran out; not stored")
            return replace(fresh, refresh_after=0.0)  # look at the stored one next time
        return fresh

    async def _fetch_token(self) -> tuple[str, float]:
        """A new token from WeChat and its lifetime in seconds (invalidates the old one)."""
        try:
            r = await self._http.get(
                f"{self.api_base}/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": self.app_id,
                    "secret": self._secret,
                },
            )
            r.raise_for_status()
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WeChatApiError(f"access token request failed: {exc!r}") from exc
        token = str(body.get("access_token") or "") if isinstance(body, dict) else ""
        if not token:
            errcode = body.get("errcode") if isinstance(body, dict) else None
            errmsg = str(body.get("errmsg", "")) if isinstance(body, dict) else repr(body)[:200]
            raise WeChatApiError("access token request refused", errcode, errmsg)
        try:
            expires_in = float(body.get("expires_in", 7200))
        except (TypeError, ValueError):
            expires_in = 7200.0
        return token, expires_in

    async def _post_text(self, token: str, openid: str, content: str) -> dict[str, Any]:
        try:
            r = await self._http.post(
                f"{self.api_base}/cgi-bin/message/custom/send",
                params={"access_token": token},
                json={"touser": openid, "msgtype": "text", "text": {"content": content}},
            )
            r.raise_for_status()
            body = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WeChatApiError(f"customer-service send failed: {exc!r}") from exc
        if not isinstance(body, dict):
            raise WeChatApiError(f"customer-service send: unexpected reply {body!r:.200}")
        return body

    async def send_text(self, openid: str, content: str) -> bool:
        """Send one text; True when WeChat took it. Failures are logged, never raised."""
        content = fit(content)
        try:
            token = await self.access_token()
            body = await self._post_text(token, openid, content)
            if body.get("errcode") in TOKEN_EXPIRED:
                log.info("WeChat access token rejected (errcode %s); refreshing", body["errcode"])
                token = await self.access_token(failed=token)
                body = await self._post_text(token, openid, content)
            errcode = body.get("errcode", 0)
            if errcode:
                raise WeChatApiError(
                    "customer-service send refused", errcode, body.get("errmsg", "")
                )
        except WeChatApiError as exc:
            log.error("WeChat answer to %s was not delivered: %s", openid, exc)
            return False
        return True

    async def close(self) -> None:
        await self._http.aclose()
