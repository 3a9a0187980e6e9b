"""Where in a message an error lies (HL7 ERL / ELD), and the error that carries it.

:class:`MessageError` is the :class:`priorscan.errors.HL7Error` of a message that was read far enough to say *where*
it is wrong. Its :class:`ErrorLocation` is rendered in the ACK with the message's own delimiters: as ERR-2 (ERL) from
v2.5 on, as the first components of ERR-1 (ELD) in v2.3 and v2.4. A message names fields, never their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from priorscan.errors import HL7Error

if TYPE_CHECKING:
    from priorscan.hl7v2.header import MessageHeader


@dataclass(frozen=True, slots=True)
class ErrorLocation:
    """A position in a message: segment, its sequence (1 for the first PID), field, repetition, component,
    sub-component (all 1-based; None where the error is not that precise)."""

    segment: str
    sequence: int = 1
    field: int | None = None
    repetition: int | None = None
    component: int | None = None
    subcomponent: int | None = None

    def erl(self, component_separator: str = "^") -> str:
        """As an HL7 v2.5 ERL: ``PID^1^3`` (a field), ``MSH^1^9^1^2`` (its first repetition's second component)."""
        parts = [self.segment, str(self.sequence)]
        tail = [self.field, self.repetition, self.component, self.subcomponent]
        if self.component is not None or self.subcomponent is not None:
            tail[1] = tail[1] or 1  # a component lies in a repetition: the first unless told
        while tail and tail[-1] is None:
            tail.pop()
        parts += ["" if n is None else str(n) for n in tail]
        return component_separator.join(parts)

    @property
    def label(self) -> str:
        """``PID-3``, ``MSH-9.2``: the conventional name of the position, for texts (MSA-3, ERR-8)."""
        if self.field is None:
            return self.segment
        text = f"{self.segment}-{self.field}"
        if self.component is not None:
            text += f".{self.component}"
            if self.subcomponent is not None:
                text += f".{self.subcomponent}"
        return text


class MessageError(HL7Error):
    """A message refused for a reason found at ``location`` (its ``header`` when the MSH could be read)."""

    def __init__(self, message: str, *, code: str, location: ErrorLocation | None = None,
                 header: MessageHeader | None = None) -> None:
        super().__init__(message, code=code)
        self.location = location
        self.header = header


__all__ = ["ErrorLocation", "MessageError"]
