"""What the server sets up for every page (``_runtime.start_page``): its event loop drops a closed
page's last update quietly and reports the rest; no update is left unsent in Panel's write
queue."""

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


def test_an_update_queued_as_the_previous_one_is_sent_is_sent_too(monkeypatch):
    # Panel's write queue (panel.io.document): an update queued while the previous queued one's
    # last write completes started a dispatch that found the queue released and returned,
    # leaving the update unsent until the page's next queued update (the θ maps' final
    # result after their preview, say: a page left at its previous state). A fake websocket
    # (Panel's handlers for other socket types) whose writes complete when told
    import asyncio

    from panel.io import document as pdoc

    class Socket:
        pass

    class Protocol:
        def create(self, kind, events):
            return (kind, tuple(events))

    class Connection:
        _socket, protocol = Socket(), Protocol()

    class Doc:
        pass

    sent, writes = [], []

    def write(conn, events=None, msg=None):
        sent.append(msg[1])
        writes.append(asyncio.get_running_loop().create_future())
        return [writes[-1]]

    monkeypatch.setitem(pdoc.extra_socket_handlers, Socket, write)
    monkeypatch.setattr(pdoc, "_dispatch_msgs", pdoc._dispatch_msgs)  # restored afterwards

    async def page(doc, conn):
        pdoc.schedule_write_events(doc, [conn], ["preview"])  # Bokeh was writing: queued
        for _ in range(3):
            await asyncio.sleep(0)
        assert sent == [("preview",)]
        writes[0].set_result(None)  # its last write completes: the dispatch wakes next ...
        pdoc.schedule_write_events(doc, [conn], ["fine"])  # ... after this one is queued
        for _ in range(20):
            await asyncio.sleep(0.005)
            for w in writes:
                if not w.done():
                    w.set_result(None)
        return list(sent)

    assert R.unstrand_queued_writes() and R.unstrand_queued_writes()  # installed once
    doc = Doc()
    assert asyncio.run(page(doc, Connection())) == [("preview",), ("fine",)]
    assert not pdoc._WRITE_MSGS.get(doc) and doc not in pdoc._WRITE_BLOCK
