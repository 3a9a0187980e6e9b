"""``POST /hl7``: one HL7 v2 message over HTTP, for clients without MLLP; the answer is its ACK.

The body is the message as text (``text/plain`` or ``application/hl7-v2``; CR or LF segment ends), its bytes read in
the character set MSH-18 names, as over MLLP (:func:`priorscan.hl7v2.decode_message`; AR ``hl7.charset`` when they
are not text in it). The status is 200
whatever the ACK says: MSA-1 carries the verdict (AA, AE or AR), exactly as over MLLP. An HTTP request always has
its answer, so a message whose MSH-16 asks for no application acknowledgement (``NE``, or ``SU``/``ER`` for the other
verdict) is still answered with one here, after any accept acknowledgement MSH-15 asked for: an empty 200, or a
commit accept alone, would hide a refusal. The scope is
``priorscan/hl7`` (or admin). Once HL7 senders are configured (``[[trust.hl7_sender]]``), a message is taken only when
its MSH-3/MSH-4 name a sender that lists the calling API client in ``clients`` (AR ``hl7.sender-not-allowed``
otherwise, kept as a dead letter).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api.context import AppContext
from api.feeds.hl7_service import ACK_CODES, process_message, reject_message
from api.feeds.mllp_access import SENDER_NOT_ALLOWED, http_sender_refusal
from api.http.deps import ContextDep, Principal, require
from priorscan import metrics
from priorscan.audit import Agent
from priorscan.hl7v2 import (
    CHARSET_ERROR,
    AckError,
    ErrorLocation,
    MessageError,
    MessageHeader,
    build_ack,
    decode_message,
    read_header,
)
from priorscan.outcome import ItemOutcome

router = APIRouter(tags=["hl7"])

CHANNEL = "http-hl7"
HL7_SCOPE = "priorscan/hl7"
ACK_MEDIA_TYPE = "text/plain"


@router.post("/hl7", response_class=PlainTextResponse,
             responses={200: {"content": {ACK_MEDIA_TYPE: {}}, "description": "the ACK (MSA-1 AA, AE or AR)"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "text/plain": {"schema": {"type": "string"}},
                 "application/hl7-v2": {"schema": {"type": "string"}}}}})
async def post_hl7(request: Request, ctx: ContextDep,
                   principal: Annotated[Principal, Depends(require(HL7_SCOPE))]) -> PlainTextResponse:
    """Apply one HL7 v2 message and answer with its ACK as text."""
    started = time.perf_counter()
    body = await request.body()
    agent = Agent(principal.kind, principal.name, principal.address)
    limit = ctx.settings.mllp_max_message_bytes
    decoded = decode_message(body[: limit + 1])
    text = decoded.text
    if len(body) > limit:
        try:
            header = read_header(text)
        except MessageError:
            header = None
        outcome = await run_in_threadpool(
            reject_message, ctx, text[:limit], header, f"message of {len(body)} bytes exceeds the maximum of {limit}",
            code="hl7.too-large", channel=CHANNEL, agent=agent, source=agent.address)
    elif decoded.problem is not None:
        outcome = await run_in_threadpool(
            reject_message, ctx, text, _header(text), decoded.problem, code=CHARSET_ERROR, channel=CHANNEL,
            agent=agent, source=agent.address, location=ErrorLocation("MSH", 1, 18))
    elif (refusal := http_sender_refusal(ctx.trusts, _header(text), client=principal.name)) is not None:
        outcome = await run_in_threadpool(
            reject_message, ctx, text, _header(text), refusal, code=SENDER_NOT_ALLOWED, channel=CHANNEL, agent=agent,
            source=agent.address, location=ErrorLocation("MSH", 1, 4), idempotency=False)
    else:
        outcome = await run_in_threadpool(process_message, ctx, text, channel=CHANNEL, agent=agent,
                                          source=agent.address)
    acks = outcome.detail.get("acks")
    acks = list(acks) if isinstance(acks, list) else [str(outcome.detail["ack"])]
    acks = [ack for ack in acks if ack]
    if not any(_ack_code(ack) in APPLICATION_CODES for ack in acks):
        acks.append(_verdict(text, outcome))
    _observe(ctx, text, acks[-1] if acks else "", time.perf_counter() - started)
    return PlainTextResponse("".join(acks), media_type=ACK_MEDIA_TYPE)


#: MSA-1 of an application acknowledgement (an accept acknowledgement says CA, CE or CR: received, not the verdict).
APPLICATION_CODES = frozenset({"AA", "AE", "AR"})


def _ack_code(ack: str) -> str:
    """MSA-1 of one of our own ACKs (its field separator is MSH's fourth character)."""
    separator = ack[3:4] or "|"
    for segment in ack.split("\r"):
        if segment.startswith("MSA" + separator):
            return segment.split(separator)[1] if separator in segment else ""
    return ""


def _verdict(text: str, outcome: ItemOutcome) -> str:
    """The application ACK of a message whose sender asked for none (what HTTP answers all the same)."""
    if outcome.accepted:
        return build_ack(_header(text), "AA")
    code, hl7_error = ACK_CODES.get(outcome.error_code or "", ("AE", "207"))
    return build_ack(_header(text), code, text=outcome.reason or "",
                     error=AckError(hl7_error, application_code=outcome.error_code or ""))


def _observe(ctx: AppContext, text: str, ack: str, seconds: float) -> None:
    """Count the message by its sender's trust, its type and its (last) ACK code."""
    try:
        header = read_header(text)
    except MessageError:
        metrics.hl7_acknowledged("http", None, None, metrics.ack_code(ack), seconds)
        return
    trust = ctx.trusts.resolve(header.sending_facility)
    metrics.hl7_acknowledged("http", trust.ods if trust else None,
                             f"{header.message_type}^{header.trigger_event}", metrics.ack_code(ack), seconds)


def _header(text: str) -> MessageHeader | None:
    try:
        return read_header(text)
    except MessageError:
        return None

