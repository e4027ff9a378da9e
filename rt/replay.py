"""``rusty-telemetry replay``: send a recording or a capture again, with its original timing.

Accepts a raw feed file (``RTFEED1``) or a capture: concatenated payloads in ``NAME.raw`` with
``NAME.index.csv`` beside it (``wallclock_hms_us,delta_s,length`` per datagram, as in
the shared AC capture). For the ksudp feed the replay plays AC's side of the handshake, for the acc
feed ACC's side of the registration (:func:`rt.sim.acc.replay_server`), so a running server records
it as if the game were there; the other feeds are pushed to their port.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from .decode import classify_datagram
from .protocols import default_protocols
from .sim.acc import replay_server
from .sim.game import AcServer, PushSender, ReplaySource
from .store import rawfile


def load(path: str | Path) -> tuple[np.ndarray, list[bytes]]:
    """Receive times (ns) and payloads of a raw feed file or a capture with its index CSV."""
    path = Path(path)
    with path.open("rb") as fh:
        head = fh.read(len(rawfile.MAGIC))
    if head == rawfile.MAGIC:
        return rawfile.read(path)
    index = path.with_suffix(".index.csv")
    if not index.exists():
        raise ValueError(f"{path}: neither a raw feed file nor a capture with {index.name} beside it")
    data = path.read_bytes()
    times, payloads, pos, t = [], [], 0, 0.0
    with index.open(newline="") as fh:
        for row in csv.DictReader(fh):
            n = int(row["length"])
            t += float(row["delta_s"])
            times.append(int(round(t * 1e9)))
            payloads.append(data[pos : pos + n])
            pos += n
    if pos != len(data):
        raise ValueError(f"{index.name} accounts for {pos} bytes, {path.name} has {len(data)}")
    return np.array(times, dtype=np.int64), payloads


def guess_feed(payloads: list[bytes]) -> str:
    """The feed whose classifier accepts most of the payloads."""
    protos = default_protocols()
    sample = payloads[:: max(1, len(payloads) // 200)]
    scores = {feed: sum(classify_datagram(protos, feed, p) is not None for p in sample) for feed in protos.feed_rules}
    return max(scores, key=scores.get)


def run_replay(config, args) -> int:
    times, payloads = load(args.file)
    if not payloads:
        print("nothing to replay", file=sys.stderr)
        return 1
    feed = args.feed or guess_feed(payloads)
    source = ReplaySource(times, payloads, args.speed)
    if feed == "acc":
        port = args.port or config.acc_port
        sender = replay_server(times, payloads, args.host, port, config.acc_password, config.acc_command_password, args.speed)
        source = sender.source  # without the recorded registration results: the server answers those
        print(f"replaying {len(source.payloads)} datagrams as Assetto Corsa Competizione on {args.host}:{port}: "
              "waiting for a registration", flush=True)
    elif feed == "ksudp":
        port = args.port or config.ksudp_port
        sender = AcServer(source, args.host, port)
        print(f"replaying {len(payloads)} datagrams as Assetto Corsa on {args.host}:{port}: waiting for a handshake", flush=True)
    else:
        port = args.port or (config.tt_port if feed == "telemetry_tool" else config.pcars_port)
        sender = PushSender(source, args.host, port)
        print(f"replaying {len(payloads)} datagrams to {feed} at {args.host}:{port}", flush=True)
    sender.start()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), TimeRemainingColumn())
    try:
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(f"{feed} x{args.speed:g}", total=len(source.payloads))
            while not source.done:
                progress.update(task, completed=source.taken)
                time.sleep(0.1)
            progress.update(task, completed=source.taken)
        time.sleep(0.2)  # let the last datagrams leave before the socket closes
    except KeyboardInterrupt:
        pass
    finally:
        sender.stop()
    print(f"sent {sender.sent} datagrams", flush=True)
    return 0
