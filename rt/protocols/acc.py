"""Assetto Corsa Competizione's broadcasting protocol (UDP, ACC's ``updListenerPort``, usually 9000).

PROTOCOLS.md §5 (the Kunos broadcasting SDK, cross-read with public clients). A client registers
with ACC, which then pushes a realtime update and one car update per car every interval and answers
entry-list and track-data requests. Every message starts with its type byte; after it, fields are
read in order (strings are a u16 byte count plus UTF-8), so each inbound kind is declared as a
grammar (:mod:`.wire`) and stored as a fixed normalised row: texts cut to a declared size, the
splits of a lap record padded to :data:`MAX_SPLITS` with "none" (INT32_MAX), the entry list to
:data:`MAX_CARS`, a car's drivers to :data:`MAX_DRIVERS`. The raw datagrams keep everything.

Version 4 (ACC 1.13.11 on) adds nationality fields to ENTRY_LIST_CAR; version-3 servers' form is
accepted too, and the row says which one parsed (``protocol_version``).
"""

from __future__ import annotations

from .wire import Message, Num, Repeat, Text, Version, When, compile_message, encode_message, rules_rows

GAME = "assetto_corsa_competizione"
PROTOCOL_VERSION = 4
OLDEST_PROTOCOL_VERSION = 3

#: ACC's "no time" in a lap time or split, ms.
NO_TIME = 2**31 - 1
MAX_SPLITS = 8
MAX_CARS = 128
MAX_DRIVERS = 8

# inbound message types
REGISTRATION_RESULT, REALTIME_UPDATE, REALTIME_CAR_UPDATE, ENTRY_LIST, TRACK_DATA, ENTRY_LIST_CAR, \
    BROADCASTING_EVENT = 1, 2, 3, 4, 5, 6, 7
# outbound message types
REGISTER_COMMAND_APPLICATION, UNREGISTER_COMMAND_APPLICATION, REQUEST_ENTRY_LIST, REQUEST_TRACK_DATA = 1, 9, 10, 11

SESSION_TYPES = {0: "practice", 4: "qualifying", 9: "superpole", 10: "race", 11: "hotlap", 12: "hotstint",
                 13: "hotlap_superpole", 14: "replay"}
SESSION_PHASES = {0: "none", 1: "starting", 2: "pre_formation", 3: "formation_lap", 4: "pre_session",
                  5: "session", 6: "session_over", 7: "post_session", 8: "result_ui"}
CAR_LOCATIONS = {0: "none", 1: "track", 2: "pitlane", 3: "pit_entry", 4: "pit_exit"}
EVENT_TYPES = {0: "none", 1: "green_flag", 2: "session_over", 3: "penalty", 4: "accident", 5: "lap_completed",
               6: "best_session_lap", 7: "best_personal_lap"}


def lap_info(prefix: str) -> tuple:
    """A LapInfo record: lap time, car and driver, n splits, four flags (13 + 4·n bytes)."""
    return (
        Num(f"{prefix}.laptimeMs", "s32", "ms", "INT32_MAX = no time", fill=NO_TIME),
        Num(f"{prefix}.carIndex", "u16"),
        Num(f"{prefix}.driverIndex", "u16"),
        Repeat(f"{prefix}.splits", "u8", MAX_SPLITS, (Num("split", "s32", "ms", "INT32_MAX = no time", fill=NO_TIME),),
               count_name=f"{prefix}.splitCount", doc="sector times so far, ms"),
        Num(f"{prefix}.isInvalid", "u8"),
        Num(f"{prefix}.isValidForBest", "u8"),
        Num(f"{prefix}.isOutlap", "u8"),
        Num(f"{prefix}.isInlap", "u8"),
    )


def _inbound(name: str, type_byte: int, items: tuple, doc: str, **kw) -> Message:
    return compile_message(f"acc_{name}", type_byte, items, game=GAME, doc=doc, **kw)


REGISTRATION = _inbound("registration_result", REGISTRATION_RESULT, (
    Num("connectionId", "s32"),
    Num("connectionSuccess", "u8", "", ">0: registered"),
    Num("isReadonly", "u8", "", "0 = read-only (no command rights)"),
    Text("errorMessage", 128),
), "ACC's answer to a registration: the connection id, or why it was refused.")

REALTIME = _inbound("realtime_update", REALTIME_UPDATE, (
    Num("eventIndex", "u16"),
    Num("sessionIndex", "u16"),
    Num("sessionType", "u8", "", "0 practice, 4 qualifying, 9 superpole, 10 race, 11 hotlap, ..."),
    Num("sessionPhase", "u8", "", "0..8: none .. session (5) .. result UI"),
    Num("sessionTime", "f32", "ms"),
    Num("sessionEndTime", "f32", "ms"),
    Num("focusedCarIndex", "s32", "", "the car the camera follows (the player's unless changed)"),
    Text("activeCameraSet", 32),
    Text("activeCamera", 32),
    Text("currentHudPage", 32),
    When("isReplayPlaying", (Num("replaySessionTime", "f32", "ms"), Num("replayRemainingTime", "f32", "ms"))),
    Num("timeOfDay", "f32", "ms"),
    Num("ambientTemp", "u8", "degC"),
    Num("trackTemp", "u8", "degC"),
    Num("clouds", "u8", "1/10"),
    Num("rainLevel", "u8", "1/10"),
    Num("wetness", "u8", "1/10"),
    *lap_info("bestSessionLap"),
), "The session's state, every interval, before the car updates.")

CAR_UPDATE = _inbound("car_update", REALTIME_CAR_UPDATE, (
    Num("carIndex", "u16"),
    Num("driverIndex", "u16", "", "changes on a driver swap"),
    Num("driverCount", "u8"),
    Num("gear", "u8", "", "raw: R = 1, N = 2, 1st = 3 (canonical gear = raw − 2)"),
    Num("worldPosX", "f32", "m"),
    Num("worldPosY", "f32", "m"),
    Num("yaw", "f32", "rad"),
    Num("carLocation", "u8", "", "0 none, 1 track, 2 pitlane, 3 pit entry, 4 pit exit"),
    Num("kmh", "u16", "km/h"),
    Num("position", "u16", "", "official position, from 1"),
    Num("cupPosition", "u16"),
    Num("trackPosition", "u16"),
    Num("splinePosition", "f32", "0..1"),
    Num("laps", "u16", "laps", "completed laps"),
    Num("delta", "s32", "ms", "realtime delta to the session's best lap"),
    *lap_info("bestSessionLap"),
    *lap_info("lastLap"),
    *lap_info("currentLap"),
), "One car of the field, every interval (ACC sends the whole field).")

ENTRY_LIST_MSG = _inbound("entry_list", ENTRY_LIST, (
    Num("connectionId", "s32"),
    Repeat("carIndex", "u16", MAX_CARS, (Num("carIndex", "u16"),), count_name="carCount"),
), "The car indices of the field; an entry-list car message follows for each.")

TRACK = _inbound("track_data", TRACK_DATA, (
    Num("connectionId", "s32"),
    Text("trackName", 64),
    Num("trackId", "s32"),
    Num("trackMeters", "s32", "m"),
    Repeat("cameraSets", "u8", 0, (Text("name", 0), Repeat("cameras", "u8", 0, (Text("camera", 0),))),
           count_name="cameraSetCount"),
    Repeat("hudPages", "u8", 0, (Text("page", 0),), count_name="hudPageCount"),
), "The track, answering a track-data request (camera sets and HUD pages are counted, not stored).",
    names={"track": "trackName"}, facts={"track_length_m": "trackMeters"})

ENTRY_CAR = _inbound("entry_list_car", ENTRY_LIST_CAR, (
    Num("carIndex", "u16"),
    Num("carModelType", "u8", "", "ACC's car model id"),
    Text("teamName", 64),
    Num("raceNumber", "s32"),
    Num("cupCategory", "u8", "", "0 pro, 1 pro-am, 2 am, 3 silver, 4 national"),
    Num("currentDriverIndex", "u8"),
    Version(4, (Num("carNationality", "u16"),)),
    Repeat("drivers", "u8", MAX_DRIVERS, (
        Text("firstName", 32), Text("lastName", 32), Text("shortName", 8),
        Num("category", "u8", "", "0 bronze, 1 silver, 2 gold, 3 platinum, 255 unknown"),
        Version(4, (Num("nationality", "u16"),)),
    ), count_name="driverCount"),
), "One car of the entry list: model, team, number and drivers.", oldest_version=OLDEST_PROTOCOL_VERSION)

EVENT = _inbound("broadcasting_event", BROADCASTING_EVENT, (
    Num("type", "u8", "", "1 green flag, 2 session over, 3 penalty, 4 accident, 5 lap completed, 6/7 best lap"),
    Text("message", 128),
    Num("timeMs", "s32", "ms"),
    Num("carId", "s32"),
), "Something happened: a lap completed, a best lap, a penalty, the session's end.")

#: What ACC sends us, by kind.
INBOUND: tuple[Message, ...] = (REGISTRATION, REALTIME, CAR_UPDATE, ENTRY_LIST_MSG, TRACK, ENTRY_CAR, EVENT)
RULES = rules_rows(INBOUND)

# ---- what we send ---------------------------------------------------------------------------------

_REGISTER = (
    Num("protocolVersion", "u8"),
    Text("displayName", 0),
    Text("connectionPassword", 0),
    Num("msRealtimeUpdateInterval", "s32", "ms"),
    Text("commandPassword", 0),
)
_CONNECTION = (Num("connectionId", "s32"),)


def register(display_name: str, password: str, interval_ms: int, command_password: str = "",
             version: int = PROTOCOL_VERSION) -> bytes:
    """REGISTER_COMMAND_APPLICATION: ask ACC to stream to this socket every ``interval_ms``."""
    return encode_message(REGISTER_COMMAND_APPLICATION, _REGISTER, {
        "protocolVersion": version, "displayName": display_name, "connectionPassword": password,
        "msRealtimeUpdateInterval": interval_ms, "commandPassword": command_password})


def unregister(connection_id: int) -> bytes:
    """UNREGISTER_COMMAND_APPLICATION: stop streaming to us."""
    return encode_message(UNREGISTER_COMMAND_APPLICATION, _CONNECTION, {"connectionId": connection_id})


def request_entry_list(connection_id: int) -> bytes:
    return encode_message(REQUEST_ENTRY_LIST, _CONNECTION, {"connectionId": connection_id})


def request_track_data(connection_id: int) -> bytes:
    return encode_message(REQUEST_TRACK_DATA, _CONNECTION, {"connectionId": connection_id})


def encode(message: Message, values: dict, version: int = PROTOCOL_VERSION) -> bytes:
    """One inbound message from values (the simulator plays ACC's side with this)."""
    return encode_message(message.type_byte, message.items, values, version)


#: ACC's car model ids (``carModelType`` of an entry-list car) → the car's name, as ACC's own
#: result files and public tools list them. An id not here (a newer car) is shown as its number.
CAR_MODELS = {
    0: "Porsche 991 GT3 R", 1: "Mercedes-AMG GT3", 2: "Ferrari 488 GT3", 3: "Audi R8 LMS",
    4: "Lamborghini Huracan GT3", 5: "McLaren 650S GT3", 6: "Nissan GT-R Nismo GT3 2018", 7: "BMW M6 GT3",
    8: "Bentley Continental GT3 2018", 9: "Porsche 991 II GT3 Cup", 10: "Nissan GT-R Nismo GT3 2017",
    11: "Bentley Continental GT3 2016", 12: "Aston Martin V12 Vantage GT3", 13: "Lamborghini Gallardo R-EX",
    14: "Emil Frey Jaguar G3", 15: "Lexus RC F GT3", 16: "Lamborghini Huracan GT3 Evo", 17: "Honda NSX GT3",
    18: "Lamborghini Huracan Super Trofeo", 19: "Audi R8 LMS Evo", 20: "Aston Martin V8 Vantage GT3",
    21: "Honda NSX GT3 Evo", 22: "McLaren 720S GT3", 23: "Porsche 991 II GT3 R", 24: "Ferrari 488 GT3 Evo",
    25: "Mercedes-AMG GT3 2020", 26: "Ferrari 488 Challenge Evo", 27: "BMW M2 CS Racing",
    28: "Porsche 992 GT3 Cup", 29: "Lamborghini Huracan Super Trofeo Evo2", 30: "BMW M4 GT3",
    31: "Audi R8 LMS GT3 Evo II", 32: "Ferrari 296 GT3", 33: "Lamborghini Huracan GT3 Evo2",
    34: "Porsche 992 GT3 R", 35: "McLaren 720S GT3 Evo", 36: "Ford Mustang GT3",
    50: "Alpine A110 GT4", 51: "Aston Martin V8 Vantage GT4", 52: "Audi R8 LMS GT4", 53: "BMW M4 GT4",
    55: "Chevrolet Camaro GT4.R", 56: "Ginetta G55 GT4", 57: "KTM X-Bow GT4", 58: "Maserati MC GT4",
    59: "McLaren 570S GT4", 60: "Mercedes-AMG GT4", 61: "Porsche 718 Cayman GT4 Clubsport",
    80: "Audi R8 LMS GT2", 82: "KTM X-Bow GT2", 83: "Maserati MC20 GT2", 84: "Mercedes-AMG GT2",
    85: "Porsche 911 GT2 RS CS Evo", 86: "Porsche 935",
}


def car_model_name(model: int) -> str:
    """The name of ACC car model ``model`` (its number when unknown)."""
    return CAR_MODELS.get(model, f"ACC car model {model}")
