"""The ``rusty-telemetry`` command (also ``python -m rt``).

Subcommands: ``serve`` (feeds + REST API), ``demo`` (serve plus the built-in simulator on every
feed), ``simulate`` (only the game side), ``replay`` (re-send a recording or capture), ``recover``
and ``redecode`` (repair recordings), ``export`` (CSV, Parquet, MoTeC), ``layouts`` (print the packet tables).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import socket
import sys

from . import __version__
from .errors import ConfigError

log = logging.getLogger("rt")


#: The simulator plays the games as they really are unless told otherwise (rt.sim.quirks).
CLEAN_HELP = ("the clean protocol: without the real games' quirks (PCARS menus with empty names, gear blips "
              "during shifts, a pause after 45 s, AC's lap timer at 0 on the out-lap, shared sequence counters)")

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rusty-telemetry",
        description="Record and analyze sim-racing UDP telemetry (Assetto Corsa, Project CARS). "
        "Configuration comes from RUSTY_TELEMETRY_* environment variables (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"rusty-telemetry {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="listen to the games and serve the REST API")
    serve.add_argument("--plain", action="store_true", help="log lines instead of the live terminal view")

    demo = sub.add_parser("demo", help="serve, with the built-in simulator driving every feed (no game needed)")
    demo.add_argument("--plain", action="store_true", help="log lines instead of the live terminal view")
    demo.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    demo.add_argument("--clean", action="store_true", help=CLEAN_HELP)

    sim = sub.add_parser("simulate", help="play a game's side of a feed: a virtual car lapping a virtual track")
    sim.add_argument("--game", choices=("ac", "tt", "pcars1", "pcars2", "acc"), required=True)
    sim.add_argument("--host", default=None, help="AC, ACC: address to listen on (default GAME_HOST); others: where to send (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=None, help="default: the configured port of that feed")
    sim.add_argument("--rate", type=float, default=None, help="datagrams per second (default: the game's own rate); "
                     "ACC: the most updates per second a client may ask for")
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--car", default=None)
    sim.add_argument("--track", default=None)
    sim.add_argument("--seconds", type=float, default=None, help="stop after this long (default: run until Ctrl-C)")
    sim.add_argument("--clean", action="store_true", help=CLEAN_HELP)

    replay = sub.add_parser("replay", help="re-send a raw feed file or a capture with its original timing")
    replay.add_argument("file", help="a raw feed file (RTFEED1) or a capture (.raw with an .index.csv beside it)")
    replay.add_argument("--feed", choices=("ksudp", "telemetry_tool", "pcars", "acc"), default=None,
                        help="which feed's port to send to (default: guessed from the packets)")
    replay.add_argument("--host", default="127.0.0.1")
    replay.add_argument("--port", type=int, default=None)
    replay.add_argument("--speed", type=float, default=1.0, help="N times faster than recorded (0 = as fast as possible)")

    recover = sub.add_parser("recover", help="repair recordings: trim torn raw records, check and rebuild data.h5")
    recover.add_argument("id", nargs="?", help="one recording (default: every recording left open)")

    redecode = sub.add_parser("redecode", help="rebuild a recording's data.h5 from its raw files (e.g. after the "
                              "Telemetry Tool table was corrected)")
    redecode.add_argument("id")

    export = sub.add_parser("export", help="one feed of a recording (a run, chosen laps) as CSV, Parquet or MoTeC")
    export.add_argument("id", help="the recording")
    export.add_argument("--feed", required=True, choices=("ksudp", "telemetry_tool", "pcars", "acc"))
    export.add_argument("--run", default=None, help="only this run's frames (a run of that feed in that recording)")
    export.add_argument("--laps", default=None, help="only these laps, as the lap model numbers them: 3,5-7")
    export.add_argument("--format", choices=("csv", "parquet", "motec"), default="parquet")
    export.add_argument("-o", "--output", required=True, help="the file to write, or a directory (Parquet: "
                        "written as DIR/track=…/car=…/recording=…/FEED.parquet)")
    export.add_argument("--hive", action="store_true", help="-o is a directory of a Hive-partitioned dataset")

    layouts = sub.add_parser("layouts", help="print the declared packet layouts as Markdown tables")
    layouts.add_argument("kind", nargs="*", help="packet kinds to print (default: all)")
    return parser


def _config():
    from .config import load

    return load(os.environ)


def _api_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def run_server(config, plain: bool, extra_start=None, extra_stop=None) -> int:
    """Start the runtime and the API in this process; return when the server stops."""
    from .api.app import create_app
    from .runtime import Runtime
    from .status import StatusView

    try:
        sock = _api_socket(config.api_host, config.api_port)
    except (OSError, ValueError) as exc:
        print(f"rusty-telemetry: cannot listen on {config.api_host}:{config.api_port}: {exc}", file=sys.stderr)
        return 2
    if not _is_loopback(config.api_host) and not config.api_token:
        print(
            f"WARNING: the API listens on {config.api_host} (not loopback) without RUSTY_TELEMETRY_API_TOKEN: "
            "anyone on the network can start, stop and delete recordings.",
            file=sys.stderr,
        )
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    runtime = Runtime(config)
    app = create_app(runtime)
    view = StatusView(runtime, url, stream=sys.stdout if not plain else _NotATty(sys.stdout))

    # Sanic stops its loop on SIGINT/SIGTERM with loop.stop(); one that arrives while the loop is
    # still completing a start-up step (its "after start" listeners) only ends that step, and
    # the server then runs on for good (seen about once in 30 starts that were stopped at once).
    # So a stop is remembered, and the server says it is listening only once its loop serves.
    stop_requested = False

    def _on_stop_signal() -> None:
        nonlocal stop_requested
        stop_requested = True
        app.stop(terminate=False)

    async def _when_serving() -> None:
        while not app.state.is_running:
            await asyncio.sleep(0.005)
        if stop_requested:
            app.stop(terminate=False)
            return
        print(f"rusty-telemetry {__version__} listening on {url}", flush=True)
        view.start()

    @app.after_server_start
    async def _announce(app_):
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, _on_stop_signal)
            except (NotImplementedError, RuntimeError):  # Windows: Sanic's own Ctrl-C handling stays
                pass
        if extra_start is not None:
            extra_start(runtime)
        app_.add_task(_when_serving())

    @app.before_server_stop
    async def _quiet(app_):
        view.stop()
        if extra_stop is not None:
            extra_stop()

    app.run(sock=sock, single_process=True, motd=False, access_log=False, debug=False)
    failed = runtime.recordings.hdf5_failed
    if failed:
        # The HDF5 library crashes at exit after a failed write (RecordingManager.hdf5_failed).
        # Everything is closed and synced by now; leave without running its shutdown.
        log.warning("skipping the HDF5 library's shutdown after write errors in %s", ", ".join(failed))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return 0


class _NotATty:
    """A stream wrapper that makes the status view log instead of drawing."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()


def _cmd_serve(args: argparse.Namespace) -> int:
    return run_server(_config(), args.plain)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .sim.game import DemoGames

    config = _config().replace(game_host="127.0.0.1")
    games = DemoGames(config, seed=args.seed, quirks=not args.clean)
    return run_server(config, args.plain, extra_start=games.start_for, extra_stop=games.stop)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .sim.game import run_simulator

    args.quirks = not args.clean
    return run_simulator(_config(), args)


def _cmd_replay(args: argparse.Namespace) -> int:
    from .replay import run_replay

    return run_replay(_config(), args)


def _recordings():
    from .protocols import protocols_for
    from .store.recordings import RecordingManager

    config = _config()
    manager = RecordingManager(config.data_dir, protocols_for(config.tt_layout))
    return config, manager


def _known_recording(config, rec_id: str) -> bool:
    """True if ``rec_id`` names a recording in DATA_DIR; prints why not otherwise."""
    import uuid

    try:
        uuid.UUID(rec_id)
    except ValueError:
        print(f"rusty-telemetry: {rec_id!r} is not a recording id", file=sys.stderr)
        return False
    if not (config.data_dir / rec_id / "manifest.json").exists():
        print(f"rusty-telemetry: no recording {rec_id} in {config.data_dir}", file=sys.stderr)
        return False
    return True


def _compact_now(config, rec_id: str) -> None:
    """Compact a repaired recording's data.h5 here (no feeds run in this process to wait for it)."""
    from .store import compact

    compact.compact(config.data_dir / rec_id)


def _cmd_recover(args: argparse.Namespace) -> int:
    config, manager = _recordings()
    if args.id is None:
        repaired = manager.open()
        print(f"{len(repaired)} recording(s) repaired in {config.data_dir}" + "".join(f"\n  {r}" for r in repaired))
        return 0
    if not _known_recording(config, args.id):
        return 2
    manifest = manager.recover(args.id)
    _compact_now(config, args.id)
    print(f"{args.id}: {manifest['status']}, " + ", ".join(f"{f} {c['packets']} datagrams" for f, c in manifest["feeds"].items()))
    return 0


def _cmd_redecode(args: argparse.Namespace) -> int:
    config, manager = _recordings()
    if not _known_recording(config, args.id):
        return 2
    manager.recover(args.id, force_rebuild=True)
    _compact_now(config, args.id)
    print(f"{args.id}: data.h5 rebuilt from the raw files")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .errors import RtError
    from .export.table import Exporter, hive_path, parse_laps
    from .protocols import protocols_for

    config = _config()
    exporter = Exporter(config.data_dir, protocols_for(config.tt_layout))
    out = Path(args.output)
    try:
        laps = parse_laps(args.laps)
        # a bar on stderr, only where a person watches (a pipe or a test gets the one summary line)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                      TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                      disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("reading", total=None)
            selection = exporter.select(args.id, args.feed, args.run, laps,
                                        progress=lambda what: bar.update(task, description=what))
            if args.hive or out.is_dir():
                if args.format != "parquet":
                    print("rusty-telemetry: a directory (--hive) takes --format parquet", file=sys.stderr)
                    return 2
                out = hive_path(out, selection)
            bar.update(task, description=f"writing {args.format}", total=len(selection), completed=0)
            files = exporter.write(selection, args.format, out, step=lambda rows: bar.advance(task, rows))
    except RtError as exc:
        print(f"rusty-telemetry: {exc}", file=sys.stderr)
        return 2
    print(f"{len(selection):,} frames, {len(selection.laps)} laps → {', '.join(map(str, files))}")
    return 0


def _cmd_layouts(args: argparse.Namespace) -> int:
    from .protocols import default_protocols
    from .protocols.layout import markdown_table

    protos = default_protocols()
    names = args.kind or [k.name for k in protos.kinds]
    unknown = [n for n in names if n not in protos.kind_id]
    if unknown:
        print(f"unknown packet kind(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    for name in names:
        layout = protos[name]
        print(markdown_table(layout))
        if layout.doc:
            print(f"\n{layout.doc}")
        print()
    return 0


COMMANDS = {
    "serve": _cmd_serve,
    "demo": _cmd_demo,
    "simulate": _cmd_simulate,
    "replay": _cmd_replay,
    "recover": _cmd_recover,
    "redecode": _cmd_redecode,
    "export": _cmd_export,
    "layouts": _cmd_layouts,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("sanic").setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"rusty-telemetry: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
