"""Reference decoder for ACC's broadcasting protocol (inbound messages), used only by the tests.

Written straight from ``PROTOCOLS.md`` section 5 of the project brief, sharing no code, constants
or layout tables with ``rt`` / ``rt_ext``: it exists to cross-check the project's fast decoder, and
a bug there must not be copied here.  Pure Python, standard library ``struct`` only.

Why a module of its own next to ``reference_decoder.py``: that one describes fixed-size packets
as offset tables checked against ``struct.calcsize``; ACC's messages have variable length
(strings are a u16 byte count plus UTF-8, lap records carry n splits, lists carry counts), so they
are read sequentially with a cursor, a different machine that would only blur the table one.

Encoding (.NET BinaryReader): little-endian, no alignment; ``string`` = u16 byte count + UTF-8
bytes, no NUL.  Every message starts with a u8 message type.

API
---
``decode_acc(datagram, protocol_version=4, *, allow_trailing=False, utf8_errors="strict")``
returns one ``dict`` per datagram.  ``protocol_version`` (3 or 4) matters only for
ENTRY_LIST_CAR, where version 4 adds ``carNationality`` and each driver's ``driverNationality``
(u16 each); under version 3 those keys are present with the value ``None``.

Field names (spec -> dict key); every dict has ``msg_type`` (the u8) and ``msg_name``:

* REGISTRATION_RESULT (1): connectionId -> ``connection_id``; success -> ``connection_success``
  (raw u8, >0 = registered); isReadonly -> ``is_readonly`` (raw u8 as on the wire, where
  **0 means read-only**) plus the derived ``read_only`` (``bool``: ``is_readonly == 0``);
  errorMessage -> ``error_message``.
* REALTIME_UPDATE (2): eventIndex ``event_index``, sessionIndex ``session_index``, sessionType
  ``session_type``, sessionPhase ``session_phase``, sessionTime ``session_time_ms``,
  sessionEndTime ``session_end_time_ms``, focusedCarIndex ``focused_car_index``, activeCameraSet
  ``active_camera_set``, activeCamera ``active_camera``, currentHudPage ``current_hud_page``,
  isReplayPlaying ``is_replay_playing`` (raw u8), replaySessionTime ``replay_session_time`` and
  replayRemainingTime ``replay_remaining_time`` (f32, present on the wire only when
  ``is_replay_playing`` is non-zero, else ``None``; the spec gives no unit), timeOfDay
  ``time_of_day_ms``, ambientTemp ``ambient_temp_c``, trackTemp ``track_temp_c``, clouds
  ``clouds``, rainLevel ``rain_level``, wetness ``wetness`` (the last three raw u8 in tenths),
  bestSessionLap ``best_session_lap`` (LapInfo dict).
* REALTIME_CAR_UPDATE (3): carIndex ``car_index``, driverIndex ``driver_index``, driverCount
  ``driver_count``, gear -> ``gear_raw`` (the wire u8) and ``gear`` (``gear_raw - 2``: R = -1,
  N = 0, 1..), worldPosX ``world_pos_x_m``, worldPosY ``world_pos_y_m``, yaw ``yaw_rad``,
  carLocation ``car_location``, kmh ``kmh``, position ``position``, cupPosition
  ``cup_position``, trackPosition ``track_position``, splinePosition ``spline_position``, laps
  ``laps``, delta ``delta_ms``, bestSessionLap/lastLap/currentLap -> ``best_session_lap``,
  ``last_lap``, ``current_lap`` (LapInfo dicts).
* LapInfo (nested dict): laptimeMs ``laptime_ms`` (``None`` for INT32_MAX), carIndex
  ``car_index``, driverIndex ``driver_index``, splitCount ``split_count``, splits ``splits``
  (a list of exactly ``split_count`` items, each ``int`` ms or ``None`` for INT32_MAX; not padded),
  isInvalid ``is_invalid``, isValidForBest ``is_valid_for_best``, isOutlap ``is_outlap``, isInlap
  ``is_inlap`` (flags: the raw u8 as ``int``, like the AC bools in ``reference_decoder.py``).
* ENTRY_LIST (4): connectionId ``connection_id``, carCount ``car_count``, carIndex[] ->
  ``car_indices`` (list).
* TRACK_DATA (5): connectionId ``connection_id``, trackName ``track_name``, trackId
  ``track_id``, trackMeters ``track_meters``, cameraSetCount ``camera_set_count``, the sets ->
  ``camera_sets``: list of ``{"name", "camera_count", "cameras": [str]}`` in wire order (a list,
  not a dict: nothing in the spec makes set names unique), hudPageCount ``hud_page_count``,
  hud pages -> ``hud_pages`` (list of str).
* ENTRY_LIST_CAR (6): carIndex ``car_index``, carModelType ``car_model_type``, teamName
  ``team_name``, raceNumber ``race_number``, cupCategory ``cup_category``, currentDriverIndex
  ``current_driver_index``, carNationality ``car_nationality`` (v4; ``None`` in v3), driverCount
  ``driver_count``, drivers -> ``drivers``: list of ``{"first_name", "last_name", "short_name",
  "category", "nationality"}`` (``nationality`` = driverNationality, v4; ``None`` in v3).
* BROADCASTING_EVENT (7): type -> ``event_type`` (renamed: ``msg_type`` is the message's),
  message ``message``, timeMs ``time_ms``, carId ``car_id``.

Numbers: u8/u16/s32 -> ``int``; f32 -> ``float`` exactly as ``struct`` widens it; strings ->
``str``.  Enumerations (session type and phase, car location, cup and driver category, event
type, gear) are returned raw and never range-checked: a value the spec does not list is news
from ACC, not a malformed datagram.

Errors (policy: a malformed datagram is counted by the feed, never fatal)
------------------------------------------------------------------------
Everything wrong with the *datagram* raises :class:`AccDecodeError` (a ``ValueError``) or one of
its subclasses, never ``IndexError``, ``struct.error`` or ``UnicodeDecodeError``.  The error
carries ``msg_type`` (``None`` for an empty datagram), ``msg_name``, ``offset`` (bytes from the
datagram's first byte) and ``field`` (the spec's camelCase name of what was being read, with
indices, e.g. ``lastLap.splits[2]``, ``driver[1].lastName``); its text names all of them:

* :class:`AccUnknownMessageType` - a type byte other than 1..7 (offset 0);
* :class:`AccTruncated` - a fixed-size field runs past the end (offset: where that field
  starts); an empty datagram is one, on ``msgType``;
* :class:`AccStringOverrun` (an ``AccTruncated``) - a string's u16 byte count runs past the end
  (offset: where the u16 count starts);
* :class:`AccBadUtf8` - a string's bytes are not UTF-8 with ``utf8_errors="strict"`` (offset:
  the first bad byte);
* :class:`AccTrailingBytes` - bytes left after the message's last field (offset: the first one).

Trailing bytes are an error by default: one UDP datagram carries exactly one message, and leftover
bytes are the sign of a misparse (typically an ENTRY_LIST_CAR of one protocol version read as the
other), which the fast decoder must count as malformed, not half-trust.  ``allow_trailing=True``
ignores them as the Kunos SDK's BinaryReader does.  Invalid UTF-8 is an error by default for the
same reason; .NET's ``Encoding.UTF8`` would substitute U+FFFD instead, which
``utf8_errors="replace"`` approximates.  A wrong ``protocol_version`` argument (not 3 or 4) is the
caller's mistake and raises a plain ``ValueError``, not an ``AccDecodeError``.
"""

import struct

__all__ = [
    "MESSAGE_TYPES",
    "INT32_MAX",
    "AccDecodeError",
    "AccUnknownMessageType",
    "AccTruncated",
    "AccStringOverrun",
    "AccBadUtf8",
    "AccTrailingBytes",
    "decode_acc",
]

#: inbound message type -> name (Kunos SDK enum: TRACK_DATA = 5, ENTRY_LIST_CAR = 6, EVENT = 7)
MESSAGE_TYPES = {
    1: "REGISTRATION_RESULT",
    2: "REALTIME_UPDATE",
    3: "REALTIME_CAR_UPDATE",
    4: "ENTRY_LIST",
    5: "TRACK_DATA",
    6: "ENTRY_LIST_CAR",
    7: "BROADCASTING_EVENT",
}

#: "none" for lap times and splits
INT32_MAX = 2**31 - 1

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_S32 = struct.Struct("<i")
_F32 = struct.Struct("<f")


class AccDecodeError(ValueError):
    """A malformed ACC broadcasting datagram; the feed counts it and carries on."""

    def __init__(self, msg_type, offset, field, detail):
        self.msg_type = msg_type
        self.msg_name = MESSAGE_TYPES.get(msg_type, "UNKNOWN") if msg_type is not None else None
        self.offset = offset
        self.field = field
        self.detail = detail
        if msg_type is None:
            what = "ACC message (no type byte)"
        else:
            what = "ACC %s (type %d)" % (self.msg_name, msg_type)
        super().__init__("%s: %s at offset %d (%s)" % (what, detail, offset, field))

    def __reduce__(self):
        return (type(self), (self.msg_type, self.offset, self.field, self.detail))


class AccUnknownMessageType(AccDecodeError):
    """The first byte is not one of the inbound message types 1..7."""


class AccTruncated(AccDecodeError):
    """A field runs past the end of the datagram."""


class AccStringOverrun(AccTruncated):
    """A string's u16 byte count runs past the end of the datagram."""


class AccBadUtf8(AccDecodeError):
    """A string's bytes are not valid UTF-8."""


class AccTrailingBytes(AccDecodeError):
    """Bytes are left after the message's last field."""


class _Reader:
    """A bounds-checked little-endian cursor over one datagram."""

    def __init__(self, data, utf8_errors):
        self.data = data
        self.pos = 0
        self.msg_type = None
        self.utf8_errors = utf8_errors

    def _take(self, n, field, what):
        start = self.pos
        left = len(self.data) - start
        if n > left:
            raise AccTruncated(
                self.msg_type, start, field, "truncated: %s needs %d bytes, %d left" % (what, n, left)
            )
        self.pos = start + n
        return start

    def u8(self, field):
        return _U8.unpack_from(self.data, self._take(1, field, "u8"))[0]

    def u16(self, field):
        return _U16.unpack_from(self.data, self._take(2, field, "u16"))[0]

    def s32(self, field):
        return _S32.unpack_from(self.data, self._take(4, field, "s32"))[0]

    def f32(self, field):
        return _F32.unpack_from(self.data, self._take(4, field, "f32"))[0]

    def string(self, field):
        length_at = self.pos
        n = self.u16(field + ".length")
        start = self.pos
        left = len(self.data) - start
        if n > left:
            raise AccStringOverrun(
                self.msg_type,
                length_at,
                field,
                "string byte count %d runs past the end (%d bytes left after it)" % (n, left),
            )
        self.pos = start + n
        raw = self.data[start:start + n]
        try:
            return raw.decode("utf-8", self.utf8_errors)
        except UnicodeDecodeError as exc:
            raise AccBadUtf8(
                self.msg_type, start + exc.start, field, "invalid UTF-8 (%s)" % exc.reason
            ) from None


def _none_if_max(value):
    return None if value == INT32_MAX else value


def _lap_info(r, name):
    """LapInfo, 13 + 4*n bytes."""
    laptime = r.s32(name + ".laptimeMs")
    car_index = r.u16(name + ".carIndex")
    driver_index = r.u16(name + ".driverIndex")
    n = r.u8(name + ".splitCount")
    splits = [_none_if_max(r.s32("%s.splits[%d]" % (name, i))) for i in range(n)]
    return {
        "laptime_ms": _none_if_max(laptime),
        "car_index": car_index,
        "driver_index": driver_index,
        "split_count": n,
        "splits": splits,
        "is_invalid": r.u8(name + ".isInvalid"),
        "is_valid_for_best": r.u8(name + ".isValidForBest"),
        "is_outlap": r.u8(name + ".isOutlap"),
        "is_inlap": r.u8(name + ".isInlap"),
    }


def _registration_result(r, version):
    out = {
        "connection_id": r.s32("connectionId"),
        "connection_success": r.u8("success"),
        "is_readonly": r.u8("isReadonly"),
    }
    out["read_only"] = out["is_readonly"] == 0
    out["error_message"] = r.string("errorMessage")
    return out


def _realtime_update(r, version):
    out = {
        "event_index": r.u16("eventIndex"),
        "session_index": r.u16("sessionIndex"),
        "session_type": r.u8("sessionType"),
        "session_phase": r.u8("sessionPhase"),
        "session_time_ms": r.f32("sessionTime"),
        "session_end_time_ms": r.f32("sessionEndTime"),
        "focused_car_index": r.s32("focusedCarIndex"),
        "active_camera_set": r.string("activeCameraSet"),
        "active_camera": r.string("activeCamera"),
        "current_hud_page": r.string("currentHudPage"),
        "is_replay_playing": r.u8("isReplayPlaying"),
    }
    if out["is_replay_playing"]:
        out["replay_session_time"] = r.f32("replaySessionTime")
        out["replay_remaining_time"] = r.f32("replayRemainingTime")
    else:
        out["replay_session_time"] = None
        out["replay_remaining_time"] = None
    out["time_of_day_ms"] = r.f32("timeOfDay")
    out["ambient_temp_c"] = r.u8("ambientTemp")
    out["track_temp_c"] = r.u8("trackTemp")
    out["clouds"] = r.u8("clouds")
    out["rain_level"] = r.u8("rainLevel")
    out["wetness"] = r.u8("wetness")
    out["best_session_lap"] = _lap_info(r, "bestSessionLap")
    return out


def _realtime_car_update(r, version):
    out = {
        "car_index": r.u16("carIndex"),
        "driver_index": r.u16("driverIndex"),
        "driver_count": r.u8("driverCount"),
        "gear_raw": r.u8("gear"),
    }
    out["gear"] = out["gear_raw"] - 2
    out["world_pos_x_m"] = r.f32("worldPosX")
    out["world_pos_y_m"] = r.f32("worldPosY")
    out["yaw_rad"] = r.f32("yaw")
    out["car_location"] = r.u8("carLocation")
    out["kmh"] = r.u16("kmh")
    out["position"] = r.u16("position")
    out["cup_position"] = r.u16("cupPosition")
    out["track_position"] = r.u16("trackPosition")
    out["spline_position"] = r.f32("splinePosition")
    out["laps"] = r.u16("laps")
    out["delta_ms"] = r.s32("delta")
    assert r.pos == 38, r.pos  # the spec's fixed head
    out["best_session_lap"] = _lap_info(r, "bestSessionLap")
    out["last_lap"] = _lap_info(r, "lastLap")
    out["current_lap"] = _lap_info(r, "currentLap")
    return out


def _entry_list(r, version):
    connection_id = r.s32("connectionId")
    n = r.u16("carCount")
    return {
        "connection_id": connection_id,
        "car_count": n,
        "car_indices": [r.u16("carIndex[%d]" % i) for i in range(n)],
    }


def _track_data(r, version):
    out = {
        "connection_id": r.s32("connectionId"),
        "track_name": r.string("trackName"),
        "track_id": r.s32("trackId"),
        "track_meters": r.s32("trackMeters"),
        "camera_set_count": r.u8("cameraSetCount"),
    }
    sets = []
    for i in range(out["camera_set_count"]):
        name = r.string("cameraSet[%d].name" % i)
        n = r.u8("cameraSet[%d].cameraCount" % i)
        cameras = [r.string("cameraSet[%d].camera[%d]" % (i, j)) for j in range(n)]
        sets.append({"name": name, "camera_count": n, "cameras": cameras})
    out["camera_sets"] = sets
    out["hud_page_count"] = r.u8("hudPageCount")
    out["hud_pages"] = [r.string("hudPage[%d]" % i) for i in range(out["hud_page_count"])]
    return out


def _entry_list_car(r, version):
    out = {
        "car_index": r.u16("carIndex"),
        "car_model_type": r.u8("carModelType"),
        "team_name": r.string("teamName"),
        "race_number": r.s32("raceNumber"),
        "cup_category": r.u8("cupCategory"),
        "current_driver_index": r.u8("currentDriverIndex"),
        "car_nationality": r.u16("carNationality") if version >= 4 else None,
        "driver_count": r.u8("driverCount"),
    }
    drivers = []
    for i in range(out["driver_count"]):
        d = "driver[%d]." % i
        drivers.append({
            "first_name": r.string(d + "firstName"),
            "last_name": r.string(d + "lastName"),
            "short_name": r.string(d + "shortName"),
            "category": r.u8(d + "category"),
            "nationality": r.u16(d + "driverNationality") if version >= 4 else None,
        })
    out["drivers"] = drivers
    return out


def _broadcasting_event(r, version):
    return {
        "event_type": r.u8("type"),
        "message": r.string("message"),
        "time_ms": r.s32("timeMs"),
        "car_id": r.s32("carId"),
    }


_BODIES = {
    1: _registration_result,
    2: _realtime_update,
    3: _realtime_car_update,
    4: _entry_list,
    5: _track_data,
    6: _entry_list_car,
    7: _broadcasting_event,
}


def decode_acc(datagram, protocol_version=4, *, allow_trailing=False, utf8_errors="strict"):
    """Decode one inbound ACC broadcasting datagram into a plain ``dict`` (see the module doc).

    ``datagram`` is anything ``bytes()`` accepts (bytes, bytearray, memoryview).  Raises an
    :class:`AccDecodeError` subclass for a malformed datagram, a plain ``ValueError`` for a
    ``protocol_version`` other than 3 or 4.
    """
    if protocol_version not in (3, 4):
        raise ValueError("protocol_version must be 3 or 4, not %r" % (protocol_version,))
    r = _Reader(bytes(datagram), utf8_errors)
    msg_type = r.u8("msgType")
    body = _BODIES.get(msg_type)
    if body is None:
        raise AccUnknownMessageType(msg_type, 0, "msgType", "unknown inbound message type %d" % msg_type)
    r.msg_type = msg_type
    out = {"msg_type": msg_type, "msg_name": MESSAGE_TYPES[msg_type]}
    out.update(body(r, protocol_version))
    left = len(r.data) - r.pos
    if left and not allow_trailing:
        raise AccTrailingBytes(
            msg_type, r.pos, "end of message", "%d trailing byte(s) after the last field" % left
        )
    return out
