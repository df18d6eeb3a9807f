"""The HTTP server's graceful shutdown, without losing a request that is already on its way.

uvicorn's own shutdown closes at once every connection that has no request in flight. Two kinds
of connection are in that state while a request may already be on its way to them:
- a new connection this process accepted whose request has not been read yet (a client that
  opened a connection and sent a request gets a reset, never an answer);
- a kept-alive connection between two requests (a client that sends its next request as the
  server closes gets a reset or an empty reply).
Both showed under load during rolling reloads (about 1 request in 1,000 per restart,
app/tests/test_reload.py). On shutdown this protocol instead answers every request that reaches
a connection with `Connection: close`, so the client knows not to send another one there, and
closes a connection only once it has been quiet for QUIET_SECONDS with no request started.
"""

from __future__ import annotations

from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.flow_control import CLOSE_HEADER
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn_worker import UvicornWorker

# How long a connection with no request in flight stays open once shutdown begins: far longer
# than a request already sent takes to arrive, short enough not to hold up a restart.
QUIET_SECONDS = 0.5


class DrainingH11Protocol(H11Protocol):
    draining = False

    def shutdown(self) -> None:
        self.draining = True
        if self.cycle is None or self.cycle.response_complete:
            self._unset_keepalive_if_required()
            self.loop.call_later(QUIET_SECONDS, self._close_if_quiet)
        else:
            self.cycle.keep_alive = False
            if not self.cycle.response_started:
                _ask_to_close(self.cycle.scope)

    def handle_events(self) -> None:
        before = self.cycle
        super().handle_events()
        if self.draining and self.cycle is not None and self.cycle is not before:
            _ask_to_close(self.cycle.scope)  # a request that arrived after shutdown began

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.draining and not self.transport.is_closing():
            self._unset_keepalive_if_required()
            self.loop.call_later(QUIET_SECONDS, self._close_if_quiet)

    def _close_if_quiet(self) -> None:
        if self.transport.is_closing():
            return
        idle = self.cycle is None or self.cycle.response_complete
        pending, _ = self.conn.trailing_data
        if idle and not pending and self.conn.their_state in (h11.IDLE, h11.DONE):
            self.conn.send(h11.ConnectionClosed())
            self.transport.close()
        else:  # a request is being read or answered: its response closes the connection
            self.loop.call_later(QUIET_SECONDS, self._close_if_quiet)


def _ask_to_close(scope: Any) -> None:
    """uvicorn answers a request that asked for `Connection: close` with the same header, and
    closes the connection after the response: ask for it on the client's behalf."""
    if CLOSE_HEADER not in scope["headers"]:
        scope["headers"].append(CLOSE_HEADER)


class DrainingUvicornWorker(UvicornWorker):
    """gunicorn's worker class for the service: uvicorn with the draining shutdown above."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **UvicornWorker.CONFIG_KWARGS,
        "http": "orders_api.serving:DrainingH11Protocol",
    }
