"""A small asyncio HTTP/1.1 receiver for the benchmarks (keep-alive, no framework).

    python bench/receiver.py PORT [--delay S] [--hang] [--fail-first] [--log FILE] [--mark T]

Answers every POST with 200 after ``--delay`` seconds, or never (``--hang``); with
``--fail-first``, the first request of each ``webhook-id`` gets 503 (its retry gets 200). With
``--log`` it writes ``<webhook-id> <receive time>`` per request to FILE when it gets SIGTERM,
followed by the first ``--mark`` text found in the request's body, if any (``--mark`` may be
given more than once)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import time

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok"
UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--fail-first", action="store_true")
    parser.add_argument("--log")
    parser.add_argument("--mark", action="append", default=[])
    args = parser.parse_args()
    marks = [mark.encode() for mark in args.mark]
    seen: list[tuple[str, float, str]] = []
    answered: set[str] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                received = time.time()
                length = 0
                webhook_id = ""
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    key = name.strip().lower()
                    if key == b"content-length":
                        length = int(value.strip())
                    elif key == b"webhook-id":
                        webhook_id = value.strip().decode()
                body = await reader.readexactly(length) if length else b""
                if args.log:
                    mark = next((m.decode() for m in marks if m in body), "")
                    seen.append((webhook_id, received, mark))
                if args.hang:
                    await asyncio.sleep(3600)
                if args.delay:
                    await asyncio.sleep(args.delay)
                if args.fail_first and webhook_id not in answered:
                    answered.add(webhook_id)
                    writer.write(UNAVAILABLE)
                else:
                    writer.write(RESPONSE)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            return  # shutting down with a keep-alive connection open: nothing to report
        finally:
            writer.close()

    server = await asyncio.start_server(handle, args.host, args.port, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()
    if args.log:
        with open(args.log, "w") as out:
            out.writelines(
                f"{webhook_id} {at}{f' {mark}' if mark else ''}\n" for webhook_id, at, mark in seen
            )


if __name__ == "__main__":
    asyncio.run(main())
