"""The client side of ACC's broadcasting protocol, driven from the consumer thread.

ACC listens on GAME_HOST:ACC_PORT (``updListenerPort`` of its ``broadcasting.json``) and streams to
whoever registers, so the acc feed's socket is bound to an ephemeral local port and does the asking:

1. send REGISTER_COMMAND_APPLICATION (protocol 4, the connection password, the update interval),
   again every :data:`RETRY_S` until ACC answers;
2. ACC answers with a registration result: refused (a wrong password) → the feed's health is
   ``refused`` with ACC's words as its error, and it asks again every :data:`REFUSED_RETRY_S`
   (someone may fix the password in ACC's file; a tight loop would only flood ACC);
   accepted → ask for the entry list and the track data;
3. ACC pushes a realtime update and one car update per car every interval. A car update naming a
   car the entry list lacks, or a driver count it does not know (a driver swap, a car joining),
   asks for the entry list again, at most every :data:`ENTRY_LIST_EVERY_S`;
4. quiet for :data:`~rt.feeds.health.LOST_S` (ACC closed, restarted, or a session changing), or
   no stream after registering: register again. A registration result with a new connection id
   is a restarted ACC: what we knew of its field is forgotten;
5. on shutdown (Ctrl-C, SIGTERM): unregister.

Only datagrams from GAME_HOST's ACC port are accepted (the receive filter).
"""

from __future__ import annotations

import logging

import numpy as np

from .. import clock
from ..protocols import acc
from ..protocols.layout import PacketLayout, decode_text
from .health import LOST_S, stream_lapse

log = logging.getLogger(__name__)

RETRY_S = 1.0
REFUSED_RETRY_S = 5.0
ENTRY_LIST_EVERY_S = 1.0
#: After a registration is accepted, how long to wait for the first update before registering again.
STREAM_TIMEOUT_S = 3.0
DISPLAY_NAME = "rusty-telemetry"


def _text(column: np.ndarray, k: int = -1) -> str:
    return decode_text(bytes(column[k]), False)


class AccSession:
    """Registration state of the acc feed (:meth:`tick` runs on every consumer pass), and what ACC
    told us of the session, the track and the field (for the live view and a recording's names)."""

    def __init__(self, feed, game_addr: tuple[str, int], password: str, interval_ms: int,
                 command_password: str = "", lost_s: float = LOST_S) -> None:
        self.feed = feed
        self.game_addr = game_addr
        self.password = password
        self.command_password = command_password
        self.interval_ms = interval_ms
        self.lost_s = lost_s
        self.phase = "register"  # register → registered; refused (retried slowly)
        self.connection_id: int | None = None
        self.refusal: str | None = None
        self.last_sent_ns = 0
        self.registered_ns = 0
        self.last_update_ns = 0
        self.last_entry_request_ns = 0
        self.registrations = 0
        self.entry_requests = 0
        self.cars: dict[int, dict] = {}  # car index → what the entry list says of it
        self.entry_list: set[int] = set()
        self.session: dict = {}
        self.focused: dict = {}
        feed.handshaking = True
        self._publish()  # the live entry has its keys (null) before ACC says anything

    # ---- sending ----------------------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        try:
            self.feed.sock.sendto(payload, self.game_addr)
        except OSError as exc:  # no route, host down, ACC not listening yet: keep trying
            self.feed.stats.errors += 1
            log.debug("acc send to %s failed: %s", self.game_addr, exc)

    def _register(self, now: int) -> None:
        self._send(acc.register(DISPLAY_NAME, self.password, self.interval_ms, self.command_password))
        self.registrations += 1
        self.last_sent_ns = now

    def _request_entry_list(self, now: int) -> None:
        if self.connection_id is None:
            return
        self._send(acc.request_entry_list(self.connection_id))
        self.entry_requests += 1
        self.last_entry_request_ns = now

    # ---- what ACC sends ------------------------------------------------------------------------

    def on_decoded(self, feed, layout: PacketLayout, cols, t_ns: np.ndarray) -> None:
        """Handler for decoded groups (consumer thread, before the sinks see them)."""
        name = layout.name
        if name == "acc_registration_result":
            self._on_registration(cols, int(t_ns[-1]))
        elif name == "acc_realtime_update":
            self._on_stream(int(t_ns[-1]))
            self.session = {
                "session_type": acc.SESSION_TYPES.get(int(cols["sessionType"][-1]), str(int(cols["sessionType"][-1]))),
                "session_phase": acc.SESSION_PHASES.get(int(cols["sessionPhase"][-1]), str(int(cols["sessionPhase"][-1]))),
                "session_time_ms": round(float(cols["sessionTime"][-1])),
                "focused_car_index": int(cols["focusedCarIndex"][-1]),
            }
        elif name == "acc_car_update":
            self._on_stream(int(t_ns[-1]))
            self._on_cars(cols, int(t_ns[-1]))
        elif name == "acc_entry_list":
            count = int(cols["carCount"][-1])
            self.entry_list = set(cols["carIndex"][-1][: min(count, acc.MAX_CARS)].tolist())
        elif name == "acc_entry_list_car":
            for k in range(len(t_ns)):
                drivers = int(cols["driverCount"][k])
                current = int(cols["currentDriverIndex"][k])
                driver = ""
                if current < min(drivers, acc.MAX_DRIVERS):
                    driver = f"{_text(cols['drivers.firstName'][k], current)} {_text(cols['drivers.lastName'][k], current)}".strip()
                self.cars[int(cols["carIndex"][k])] = {
                    "model": int(cols["carModelType"][k]), "team": _text(cols["teamName"], k),
                    "race_number": int(cols["raceNumber"][k]), "driver_count": drivers, "driver": driver}
        elif name == "acc_track_data":
            self.session["track_meters"] = int(cols["trackMeters"][-1])
        self._publish()

    def _on_registration(self, cols, t: int) -> None:
        success = int(cols["connectionSuccess"][-1]) > 0
        if not success:
            self.refusal = _text(cols["errorMessage"]) or "registration refused"
            if self.phase != "refused":
                log.warning("acc: ACC at %s refused the registration: %s", self.game_addr[0], self.refusal)
            self.phase = "refused"
            self.feed.handshaking = "refused"
            self.feed.error = f"ACC refused the registration: {self.refusal}"
            return
        connection = int(cols["connectionId"][-1])
        if connection != self.connection_id:
            # A new connection: a restarted ACC numbers its field afresh.
            self.cars.clear()
            self.entry_list.clear()
        self.connection_id = connection
        self.phase = "registered"
        self.refusal = None
        self.feed.error = None
        self.registered_ns = t
        log.info("acc: registered with ACC at %s (connection %d)", self.game_addr[0], connection)
        now = clock.now_ns()
        self._request_entry_list(now)
        self._send(acc.request_track_data(connection))

    def _on_stream(self, t: int) -> None:
        self.last_update_ns = max(self.last_update_ns, t)
        if self.phase == "registered":
            self.feed.handshaking = False

    def _on_cars(self, cols, t: int) -> None:
        index = cols["carIndex"].astype(np.int64)
        focus = self.session.get("focused_car_index")
        unknown = False
        for k in np.unique(index, return_index=True)[1].tolist():
            car = self.cars.get(int(index[k]))
            if int(index[k]) not in self.entry_list or car is None or car["driver_count"] != int(cols["driverCount"][k]):
                unknown = True
                break
        if unknown and self.phase == "registered" and t - self.last_entry_request_ns >= ENTRY_LIST_EVERY_S * 1e9:
            self._request_entry_list(max(t, clock.now_ns()))
        if focus is not None:
            mine = np.flatnonzero(index == focus)
            if mine.size:
                k = int(mine[-1])
                self.focused = {
                    "car_index": int(focus),
                    "position": int(cols["position"][k]),
                    "laps": int(cols["laps"][k]),
                    "delta_ms": int(cols["delta"][k]),
                    "location": acc.CAR_LOCATIONS.get(int(cols["carLocation"][k]), str(int(cols["carLocation"][k]))),
                }

    def _publish(self) -> None:
        """What the live view and a recording's names take from the session (feed.info, feed.extra)."""
        focus = self.session.get("focused_car_index")
        car = self.cars.get(focus) if focus is not None else None
        if car is not None:
            self.feed.info["car"] = acc.car_model_name(car["model"])
            if car["driver"]:
                self.feed.info["driver"] = car["driver"]
        self.feed.extra = {
            "session_type": self.session.get("session_type"),
            "session_phase": self.session.get("session_phase"),
            "driver": car["driver"] if car else None,
            "team": car["team"] if car else None,
            "race_number": car["race_number"] if car else None,
            "position": self.focused.get("position"),
            "delta_ms": self.focused.get("delta_ms"),
            "cars": len(self.entry_list) or None,
        }

    # ---- timers --------------------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        """Registered, and ACC's updates have been seen since (the timers are idle)."""
        return self.phase == "registered" and self.last_update_ns >= self.registered_ns

    def tick(self, now_ns: int | None = None) -> None:
        now = clock.now_ns() if now_ns is None else now_ns
        if self.phase == "registered":
            lapse = stream_lapse(now, self.last_update_ns, self.registered_ns, STREAM_TIMEOUT_S, self.lost_s)
            if lapse == "quiet":
                log.info("acc: quiet for %.1f s, registering again", (now - self.last_update_ns) / 1e9)
            if lapse is not None:
                self.phase = "register"
                self.feed.handshaking = True
        if self.phase == "register" and now - self.last_sent_ns >= RETRY_S * 1e9:
            self._register(now)
        elif self.phase == "refused" and now - self.last_sent_ns >= REFUSED_RETRY_S * 1e9:
            self._register(now)

    def close(self) -> None:
        """Tell ACC to stop streaming to us."""
        if self.phase == "registered" and self.connection_id is not None:
            self._send(acc.unregister(self.connection_id))
        self.phase = "register"
