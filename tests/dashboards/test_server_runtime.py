"""The server's event loop drops a closed page's last update quietly and reports the rest."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("panel")

from asymflux.views import _runtime as R  # noqa: E402


def test_a_closed_pages_update_is_dropped_and_other_errors_are_reported(monkeypatch):
    from tornado.websocket import WebSocketClosedError

    loop = asyncio.new_event_loop()
    seen = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context["exception"]))
    asyncio.set_event_loop(loop)
    try:
        assert not R.quiet_closed_websockets()  # outside a server: nothing changes
        monkeypatch.setattr(R, "in_server", lambda: True)
        assert R.quiet_closed_websockets()
        handler = loop.get_exception_handler()
        assert R.quiet_closed_websockets() and loop.get_exception_handler() is handler  # once
        handler(loop, {"message": "Task exception was never retrieved",
                       "exception": WebSocketClosedError()})
        assert seen == []
        other = ValueError("a real error")
        handler(loop, {"message": "Task exception was never retrieved", "exception": other})
        assert seen == [other]
    finally:
        asyncio.set_event_loop(None)
        loop.close()
