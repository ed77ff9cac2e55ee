"""The baseline for the ingest benchmark: an aiohttp handler that reads the body and answers
the same Kdniao acknowledgement, with no verification, parsing or Kafka."""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

ACK = b'{"EBusinessID":"","UpdateTime":"2026-01-01 00:00:00","Success":true,"Reason":""}'


async def handle(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=ACK, content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int)
    parser.add_argument("--create-topics", action="store_true")
    args = parser.parse_args()
    if args.create_topics:
        from waybill_watch.settings import Settings
        from waybill_watch.worker.topics import ensure_topics

        asyncio.run(ensure_topics(Settings()))
        return
    app = web.Application()
    app.router.add_post("/", handle)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
