#!/usr/bin/env python3
"""A real SMTP server for the tests: aiosmtpd, saving every message it
accepts as <maildir>/<n>.eml. With --refuse it answers every recipient with
a permanent 550, accepting nothing; with --delay S it takes S seconds to
accept each message (a slow server).

Usage: sink.py --port PORT --maildir DIR [--refuse] [--delay S]
Prints "ready" once it listens.
"""

import argparse
import asyncio
import itertools
import signal
from pathlib import Path

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, maildir: Path, refuse: bool, delay: float):
        self.maildir = maildir
        self.refuse = refuse
        self.delay = delay
        self.counter = itertools.count(1)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        path = self.maildir / f"{next(self.counter):06}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(envelope.original_content or envelope.content)
        tmp.rename(path)
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True)
    parser.add_argument("--refuse", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    maildir = Path(args.maildir)
    maildir.mkdir(parents=True, exist_ok=True)
    controller = Controller(Sink(maildir, args.refuse, args.delay), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    main()
