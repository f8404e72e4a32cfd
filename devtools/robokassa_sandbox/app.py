"""The emulator's aiohttp application.

Robokassa's Refund API v2 (as aiorobokassa calls it) and its XML interface OpStateExt:
    POST /RefundService/Refund/Create   body: a JSON string, the JWT (HS256/384/512 or MD5 over
                                        password #3) whose payload is {OpKey, RefundSum?, InvoiceItems?}
                                        → {"success": true, "requestId": GUID} or
                                          {"success": false, "message": ...}; 401 on a bad signature
    GET  /RefundService/Refund/GetState?id=GUID
                                        → {"requestId", "amount", "label"} or {"message": ...}
    GET|POST /Merchant/WebService/Service.asmx/OpStateExt?MerchantLogin&InvoiceID&Signature
                                        Signature = hash("MerchantLogin:InvoiceID:password #2"), the
                                        shop's hash (--signature-algorithm, default MD5), any case
                                        → OperationStateResponse XML: Result/Code 0 with State/Code
                                          and Info (OutSum, OpKey, ...); 1 bad signature; 2 unknown
                                          shop; 3 no such InvoiceID. Always HTTP 200, like Robokassa.
                                        State is 100 (paid), or the payment's own (5, 10, 50, 80),
                                        and 60 once finished refunds cover the whole payment.
Test controls (no signature):
    POST   /_config/payments            {"amount": "1500.00", "description"?, "behavior"?, "op_key"?,
                                         "invoice_id"?, "state"?, "no_op_key"?} → the payment
    GET    /_config/payments/{invoice_id}
    POST   /_config/refunds/{id}/settle {"label": "finished" | "canceled"}
    POST   /_config/faults              {"status"?, "count"?, "delay_seconds"?, "path_prefix"?, "after"?}
    DELETE /_config/faults · GET|DELETE /_config/stats · DELETE /_config/data
"""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from xml.sax.saxutils import escape

from aiohttp import web

from . import DEFAULT_BEHAVIOR, REFUND_BEHAVIORS

log = logging.getLogger("robokassa_sandbox")

_HASHES = {"HS256": "sha256", "SHA256": "sha256", "HS384": "sha384", "SHA384": "sha384",
           "HS512": "sha512", "SHA512": "sha512", "MD5": "md5", "HS1": "sha1", "SHA1": "sha1"}
KOPEK = Decimal("0.01")


@dataclass
class Payment:
    op_key: str  # "" for a payment method without one
    invoice_id: int
    amount: str  # rubles, two decimals
    description: str = ""
    behavior: str = DEFAULT_BEHAVIOR
    refunds: list = field(default_factory=list)  # request ids, oldest first
    state: int = 100  # OpStateExt's State/Code


@dataclass
class Refund:
    request_id: str
    op_key: str
    amount: str
    label: str = "processing"
    settle_at: float | None = None
    settle_to: str | None = None
    items: list = field(default_factory=list)
    created: float = field(default_factory=time.time)


@dataclass
class Fault:
    status: int | None = 500
    count: int | None = 1  # None: until cleared
    delay_seconds: float | None = None
    path_prefix: str = "/RefundService"
    after: bool = False  # do the work, then answer with the fault (a lost answer)


class State:
    def __init__(self, *, login: str, password2: str, password3: str, signature_algorithm: str,
                 settle_seconds: float, state_file: str | None):
        self.login = login
        self.password2 = password2
        self.password3 = password3
        self.signature_algorithm = signature_algorithm.lower()
        self.settle_seconds = settle_seconds
        self.state_file = Path(state_file) if state_file else None
        self.payments: dict[str, Payment] = {}  # by InvoiceID (as text)
        self.refunds: dict[str, Refund] = {}
        self.faults: list[Fault] = []
        self.requests: dict[str, int] = {}
        self.next_invoice = 1000

    # persistence ------------------------------------------------------------------------
    def load(self):
        if self.state_file and self.state_file.exists():
            data = json.loads(self.state_file.read_text())
            self.payments = {str(v["invoice_id"]): Payment(**v) for v in data["payments"].values()}
            self.refunds = {k: Refund(**v) for k, v in data["refunds"].items()}
            self.next_invoice = data.get("next_invoice", 1000)

    def save(self):
        if self.state_file:
            data = {"payments": {k: asdict(v) for k, v in self.payments.items()},
                    "refunds": {k: asdict(v) for k, v in self.refunds.items()},
                    "next_invoice": self.next_invoice}
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            tmp.replace(self.state_file)

    # refunds ----------------------------------------------------------------------------
    def refund_now(self, refund: Refund) -> Refund:
        if refund.label == "processing" and refund.settle_to and refund.settle_at is not None \
                and time.time() >= refund.settle_at:
            refund.label = refund.settle_to
        return refund

    def by_op_key(self, op_key: str) -> Payment | None:
        if not op_key:
            return None
        return next((p for p in self.payments.values() if p.op_key == op_key), None)

    def op_state(self, payment: Payment) -> int:
        finished = sum((Decimal(self.refund_now(self.refunds[r]).amount) for r in payment.refunds
                        if self.refunds[r].label == "finished"), Decimal("0"))
        return 60 if payment.state == 100 and finished >= Decimal(payment.amount) else payment.state

    def refunded(self, payment: Payment) -> Decimal:
        return sum((Decimal(self.refund_now(self.refunds[r]).amount) for r in payment.refunds
                    if self.refunds[r].label != "canceled"), Decimal("0"))


def verify_jwt(token, secret: str) -> dict:
    """The payload of a JWT signed with `secret`, or ValueError."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise ValueError("The body is not a JWT.")
    header_b64, payload_b64, signature_b64 = token.split(".")
    try:
        header = json.loads(_b64decode(header_b64))
        payload = json.loads(_b64decode(payload_b64), parse_float=Decimal)
    except ValueError:
        raise ValueError("The JWT is not base64url JSON.") from None
    digest = _HASHES.get(str(header.get("alg", "")).upper())
    if digest is None:
        raise ValueError(f"Unsupported JWT alg {header.get('alg')!r}.")
    expected = hmac.new(secret.encode(), f"{header_b64}.{payload_b64}".encode(), digest).digest()
    if not hmac.compare_digest(expected, _b64decode(signature_b64)):
        raise ValueError("Invalid signature.")
    if not isinstance(payload, dict):
        raise ValueError("The JWT payload is not an object.")
    return payload


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _rubles(value) -> Decimal:
    amount = Decimal(str(value))
    if not amount.is_finite() or amount <= 0:
        raise InvalidOperation
    return amount


def op_state_xml(result_code: int, description: str = "", payment: Payment | None = None, state_code: int = 0) -> str:
    """An OperationStateResponse as Robokassa's OpStateExt writes it."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>',
             '<OperationStateResponse xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
             'xmlns="http://merchant.roboxchange.com/WebService/">',
             f"<Result><Code>{result_code}</Code><Description>{escape(description)}</Description></Result>"]
    if payment is not None:
        now = time.strftime("%Y-%m-%dT%H:%M:%S+03:00", time.gmtime(time.time() + 3 * 3600))
        op_key = f"<OpKey>{escape(payment.op_key)}</OpKey>" if payment.op_key else ""
        sum6 = f"{Decimal(payment.amount):.6f}"
        parts += [f"<State><Code>{state_code}</Code><RequestDate>{now}</RequestDate><StateDate>{now}</StateDate></State>",
                  '<Info xsi:type="OperationInfoExt"><IncCurrLabel>BankCardPSR</IncCurrLabel>'
                  f"<IncSum>{sum6}</IncSum><IncAccount>220220******1234</IncAccount>"
                  "<PaymentMethod><Code>BankCard</Code><Description>Банковская карта</Description></PaymentMethod>"
                  f"<OutCurrLabel>BankCardPSR</OutCurrLabel><OutSum>{sum6}</OutSum>{op_key}</Info>",
                  "<UserField>" + (f"<Field><Name>shp_product</Name><Value>{escape(payment.description)}</Value>"
                                   "</Field>" if payment.description else "") + "</UserField>"]
    parts.append("</OperationStateResponse>")
    return "".join(parts)


def build_app(*, login: str, password3: str, password2: str = "sandbox-password-2", signature_algorithm: str = "MD5",
              settle_seconds: float = 2.0, state_file: str | None = None) -> web.Application:
    state = State(login=login, password2=password2, password3=password3, signature_algorithm=signature_algorithm,
                  settle_seconds=settle_seconds, state_file=state_file)
    state.load()

    @web.middleware
    async def faults_and_stats(request, handler):
        if request.path.startswith("/_config/"):
            return await handler(request)
        key = f"{request.method} {request.path}"
        state.requests[key] = state.requests.get(key, 0) + 1
        fault = next((f for f in state.faults if request.path.startswith(f.path_prefix)), None)
        if fault is not None:
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    state.faults.remove(fault)
            if fault.delay_seconds:
                await asyncio.sleep(fault.delay_seconds)
            if fault.after:
                await handler(request)
            if fault.status:
                return web.json_response({"success": False, "message": f"Injected fault {fault.status}"},
                                         status=fault.status)
        return await handler(request)

    async def signed(request) -> dict:
        try:
            token = json.loads(await request.text())
            return verify_jwt(token, state.password3)
        except ValueError as error:
            raise web.HTTPUnauthorized(text=json.dumps({"success": False, "message": str(error)}),
                                       content_type="application/json") from None

    def refusal(message: str):
        return web.json_response({"success": False, "message": message})

    async def create(request):
        payload = await signed(request)
        payment = state.by_op_key(str(payload.get("OpKey", "")))
        if payment is None:
            return refusal("Operation not found: unknown OpKey.")
        if state.op_state(payment) not in (100, 60):
            return refusal(f"The operation cannot be refunded in state {payment.state}.")
        remaining = Decimal(payment.amount) - state.refunded(payment)
        try:
            amount = _rubles(payload["RefundSum"]) if payload.get("RefundSum") is not None else remaining
        except InvalidOperation:
            return refusal("RefundSum must be a positive amount.")
        if amount != amount.quantize(KOPEK):
            return refusal("RefundSum has more than two decimals.")
        items = payload.get("InvoiceItems") or []
        if items:
            try:
                total = sum((Decimal(str(i["Cost"])) * Decimal(str(i["Quantity"])) for i in items), Decimal("0"))
            except (KeyError, TypeError, InvalidOperation):
                return refusal("InvoiceItems are malformed.")
            if total.quantize(KOPEK) != amount:
                return refusal(f"InvoiceItems add up to {total}, not the RefundSum {amount}.")
        if remaining <= 0:
            return refusal("The operation is already refunded in full.")
        if amount > remaining:
            return refusal(f"RefundSum {amount} exceeds the amount available for refund ({remaining}).")
        settle_to = REFUND_BEHAVIORS[payment.behavior]
        refund = Refund(request_id=str(uuid.uuid4()), op_key=payment.op_key, amount=str(amount.quantize(KOPEK)),
                        settle_to=settle_to, settle_at=time.time() + state.settle_seconds if settle_to else None,
                        items=[{k: str(v) for k, v in i.items()} for i in items])
        state.refunds[refund.request_id] = refund
        payment.refunds.append(refund.request_id)
        state.save()
        return web.json_response({"success": True, "requestId": refund.request_id, "message": None})

    def refund_json(refund: Refund) -> dict:
        state.refund_now(refund)
        return {"requestId": refund.request_id, "amount": float(Decimal(refund.amount)), "label": refund.label}

    async def get_state(request):
        refund = state.refunds.get(request.query.get("id", ""))
        if refund is None:
            return web.json_response({"message": "Refund request not found."})
        return web.json_response(refund_json(refund))

    async def op_state_ext(request):
        params = dict(request.query)
        if request.method == "POST":
            params.update(await request.post())
        login, invoice_id = params.get("MerchantLogin", ""), params.get("InvoiceID", "")
        expected = hashlib.new(state.signature_algorithm,
                               f"{login}:{invoice_id}:{state.password2}".encode()).hexdigest()
        if not hmac.compare_digest(expected, str(params.get("Signature", "")).lower()):
            xml = op_state_xml(1, "Неверная цифровая подпись запроса (invalid signature)")
        elif login != state.login:
            xml = op_state_xml(2, "Информация о магазине с таким MerchantLogin не найдена или магазин не активирован")
        elif (payment := state.payments.get(invoice_id)) is None:
            xml = op_state_xml(3, "Информация об операции с таким InvoiceID не найдена")
        else:
            xml = op_state_xml(0, "", payment, state.op_state(payment))
        return web.Response(text=xml, content_type="text/xml", charset="utf-8")

    # /_config ----------------------------------------------------------------------------
    async def config_payment(request):
        data = await request.json()
        try:
            amount = _rubles(data["amount"])
        except (KeyError, InvalidOperation):
            raise web.HTTPBadRequest(text="amount: a positive number of rubles") from None
        behavior = data.get("behavior") or DEFAULT_BEHAVIOR
        if behavior not in REFUND_BEHAVIORS:
            raise web.HTTPBadRequest(text=f"behavior: one of {sorted(REFUND_BEHAVIORS)}")
        op_key = "" if data.get("no_op_key") else (data.get("op_key") or str(uuid.uuid4()).upper())
        try:
            invoice_id = int(data.get("invoice_id") or state.next_invoice + 1)
            pay_state = int(data.get("state") or 100)
        except (TypeError, ValueError):
            raise web.HTTPBadRequest(text="invoice_id and state: numbers") from None
        if str(invoice_id) in state.payments or pay_state not in (5, 10, 50, 80, 100):
            raise web.HTTPBadRequest(text="invoice_id taken, or state not one of 5, 10, 50, 80, 100")
        state.next_invoice = max(state.next_invoice, invoice_id)
        payment = Payment(op_key=op_key, invoice_id=invoice_id, amount=str(amount.quantize(KOPEK)),
                          description=str(data.get("description", "")), behavior=behavior, state=pay_state)
        state.payments[str(invoice_id)] = payment
        state.save()
        return web.json_response(asdict(payment))

    async def config_payment_get(request):
        payment = state.payments.get(request.match_info["invoice_id"])
        if payment is None:
            raise web.HTTPNotFound()
        # "refunds" lists the request ids; "refunds_made" what each refund request carried.
        return web.json_response({**asdict(payment),
                                  "refunds_made": [asdict(state.refunds[r]) for r in payment.refunds]})

    async def config_settle(request):
        refund = state.refunds.get(request.match_info["request_id"])
        if refund is None:
            raise web.HTTPNotFound()
        label = (await request.json()).get("label")
        if label not in ("finished", "canceled"):
            raise web.HTTPBadRequest(text="label: finished or canceled")
        refund.label = label
        state.save()
        return web.json_response(refund_json(refund))

    async def config_add_fault(request):
        data = await request.json()
        state.faults.append(Fault(**{k: v for k, v in data.items() if v is not None}))
        return web.json_response({"faults": [asdict(f) for f in state.faults]})

    async def config_clear_faults(request):
        state.faults.clear()
        return web.json_response({"faults": []})

    async def config_stats(request):
        return web.json_response({"requests": sum(state.requests.values()), "by_endpoint": state.requests})

    async def config_reset_stats(request):
        state.requests.clear()
        return web.json_response({})

    async def config_reset_data(request):
        state.payments.clear()
        state.refunds.clear()
        state.save()
        return web.json_response({})

    async def root(request):
        return web.json_response({"robokassa_sandbox": True})

    async def on_cleanup(app):
        state.save()

    app = web.Application(middlewares=[faults_and_stats])
    app["state"] = state
    app.on_cleanup.append(on_cleanup)
    app.add_routes([
        web.get("/", root),
        web.post("/RefundService/Refund/Create", create),
        web.get("/RefundService/Refund/GetState", get_state),
        web.get("/Merchant/WebService/Service.asmx/OpStateExt", op_state_ext),
        web.post("/Merchant/WebService/Service.asmx/OpStateExt", op_state_ext),
        web.post("/_config/payments", config_payment),
        web.get("/_config/payments/{invoice_id}", config_payment_get),
        web.post("/_config/refunds/{request_id}/settle", config_settle),
        web.post("/_config/faults", config_add_fault),
        web.delete("/_config/faults", config_clear_faults),
        web.get("/_config/stats", config_stats),
        web.delete("/_config/stats", config_reset_stats),
        web.delete("/_config/data", config_reset_data),
    ])
    return app
