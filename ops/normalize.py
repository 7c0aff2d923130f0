"""`attrib normalize`: check a payload by hand — one body (or raw query string) on stdin → canonical event(s)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from typing import Any, get_args

from attrib.settings import Mmp, Settings, SourceSettings
from schemas.errors import NormalizeError
from schemas.normalize import normalize, source_text

HELP = "normalize one webhook body (or --query string) from stdin and print the canonical event(s) as JSON"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mmp", choices=get_args(Mmp), help="the sender's format (default: the --source's)")
    p.add_argument("--source", help="use this configured source's MMP, app_id and options (event_types, query_map…)")
    p.add_argument("--query", action="store_true",
                   help="stdin is a raw query string (a GET callback; a full URL is fine too)")
    p.add_argument("--app-id", help="app id when the payload carries none (Branch)")
    p.add_argument("--show-plan", metavar="MMP", choices=get_args(Mmp),
                   help="print the Python function generated for MMP's deliveries and exit (reads no stdin)")


def _json(v: Any) -> Any:
    return format(v.normalize(), "f") if isinstance(v, Decimal) else v  # exact, without trailing zeros


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.show_plan:
        print(source_text(args.show_plan), end="")
        return 0
    if args.source:
        src = settings.source(args.source)
        if src is None:
            known = ", ".join(s.name for s in settings.sources) or "none configured"
            print(f"attrib normalize: unknown source {args.source!r} (known: {known})", file=sys.stderr)
            return 2
        if args.mmp or args.app_id:
            src = src.model_copy(update={k: v for k, v in (("mmp", args.mmp), ("app_id", args.app_id)) if v})
    elif args.mmp:
        src = SourceSettings(name="cli", mmp=args.mmp, app_id=args.app_id)
    else:
        print("attrib normalize: give --mmp NAME or --source NAME", file=sys.stderr)
        return 2
    data = sys.stdin.buffer.read()
    body, qs = data, ""
    if args.query:
        text = data.decode("utf-8", "replace").strip()
        qs = text.split("?", 1)[1] if "?" in text else text
        body = b""
    raw = {"delivery_id": "cli", "source": src.name, "mmp": src.mmp, "app_id": src.app_id,
           "method": "GET" if args.query else "POST", "path": "/", "query_string": qs,
           "headers": {} if args.query else {"content-type": "application/json"}, "body": body,
           "remote_addr": "", "received_at": int(time.time() * 1000), "user_key": ""}
    try:
        events = normalize(src, raw)
    except NormalizeError as exc:
        where = f" (field {exc.field})" if exc.field else ""
        print(f"attrib normalize: {exc.reason}{where}: {exc.message}", file=sys.stderr)
        return 1
    for ev in events:
        print(json.dumps({k: _json(v) for k, v in ev.items()}, ensure_ascii=False, indent=2))
    return 0
