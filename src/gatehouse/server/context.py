"""What the server knows about the request being served, without passing it down.

The HTTP layer's request middleware sets `current_request` for the task that serves one
request; the audit recorder and the log formatter read it, so services record who and from
where without every signature carrying it. Outside a request (the CLI, background tasks)
it is None.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str
    ip: str | None = None
    user_agent: str | None = None


current_request: ContextVar[RequestContext | None] = ContextVar(
    "gatehouse_current_request", default=None
)


def request_context() -> RequestContext | None:
    return current_request.get()
