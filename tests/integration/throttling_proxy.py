"""An HTTP proxy in front of the real Elasticsearch that answers every third bulk item `429
es_rejected_execution_exception` without sending it on, as a busy node answers: the item is
not written, the others are. A document already refused twice passes (a busy node is busy for a
while, not for ever), so every retried item lands within the retries whatever the interleaving
of concurrent writers; documents are told apart by index and id (connectors that share ids in
their own indices are throttled alike). Everything else passes through unchanged."""

from __future__ import annotations

import json
from collections import Counter

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}
TAKES_A_SOURCE = {"index", "create", "update"}  # these action lines are followed by a body line


class ThrottlingProxy:
    def __init__(self, target: str, every: int = 3, refusals_per_item: int = 2):
        self.target = target.rstrip("/")
        self.every = every
        self.refusals_per_item = refusals_per_item
        self.items = 0  # bulk items seen, over every request
        self.rejected: list[str] = []  # ids answered 429, in order
        self._refused: Counter[tuple[str, str]] = Counter()  # (index or bulk path, id)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=True)
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # the port the OS chose
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        dropped: dict[int, tuple[str, str]] = {}  # item position -> (action, id)
        if request.method in ("POST", "PUT") and request.path.rstrip("/").endswith("/_bulk"):
            body, dropped = self._drop_every_nth(body, request.path)
        if dropped and not body:  # every item of this request refused: nothing to send
            empty = b'{"took": 0, "errors": false, "items": []}'
            return web.Response(
                body=self._with_rejections(empty, dropped), content_type="application/json"
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(
            request.method,
            self.target + request.rel_url.path_qs,
            data=body,
            headers=headers,
        ) as answer:
            payload = await answer.read()
            out_headers = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            status = answer.status
        if dropped and status == 200:
            payload = self._with_rejections(payload, dropped)
        return web.Response(body=payload, status=status, headers=out_headers)

    def _drop_every_nth(self, body: bytes, path: str) -> tuple[bytes, dict[int, tuple[str, str]]]:
        lines = [line for line in body.split(b"\n") if line.strip()]
        kept: list[bytes] = []
        dropped: dict[int, tuple[str, str]] = {}
        position = 0
        at = 0
        while at < len(lines):
            action_line = lines[at]
            action, meta = next(iter(json.loads(action_line).items()))
            width = 2 if action in TAKES_A_SOURCE else 1
            self.items += 1
            document_id = str(meta.get("_id"))
            document = (str(meta.get("_index") or path), document_id)
            if self.items % self.every == 0 and self._refused[document] < self.refusals_per_item:
                dropped[position] = (action, document_id)
                self.rejected.append(document_id)
                self._refused[document] += 1
            else:
                kept.extend(lines[at : at + width])
            position += 1
            at += width
        return (b"\n".join(kept) + b"\n") if kept else b"", dropped

    @staticmethod
    def _with_rejections(payload: bytes, dropped: dict[int, tuple[str, str]]) -> bytes:
        answer = json.loads(payload) if payload else {}
        sent = list(answer.get("items", []))
        items = []
        total = len(sent) + len(dropped)
        for position in range(total):
            if position in dropped:
                action, document_id = dropped[position]
                items.append(
                    {
                        action: {
                            "_id": document_id,
                            "status": 429,
                            "error": {
                                "type": "es_rejected_execution_exception",
                                "reason": "rejected execution (the test's throttling proxy)",
                            },
                        }
                    }
                )
            else:
                items.append(sent.pop(0))
        answer["items"] = items
        answer["errors"] = True
        return json.dumps(answer).encode()
