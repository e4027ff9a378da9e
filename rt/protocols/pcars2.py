"""Project CARS 2 native UDP format (port 5606; also Automobilista 2 and PC3).

Layouts from PROTOCOLS.md §3 (SMS ``SMS_UDP_Definitions.hpp`` in its initial, intermediate and
final "Patch 5" versions). Each packet type grew by appending fields, so a size version is the
final field table cut at that size (:func:`~rt.protocols.layout.truncate`). Not capture-verified:
no public PC2/AMS2 captures exist.

Every datagram starts with the 12-byte PacketBase; ``(mPacketType at byte 10, length)`` picks the
kind (:data:`KINDS`).
"""

from __future__ import annotations

from .layout import Field, PacketLayout, SequenceCounter, fields_from_rows, struct_array, truncate

GAME = "project_cars_2"

#: mPacketNumber counts every packet of a game run, whatever its kind.
SEQUENCE = SequenceCounter("mPacketNumber", "pcars2", modulo=1 << 32, reset=100_000)

BASE = fields_from_rows(
    [
        (0, "u32", "mPacketNumber", (), "", "counter over all packets of this game run"),
        (4, "u32", "mCategoryPacketNumber", (), "", "counter per packet category"),
        (8, "u8", "mPartialPacketIndex", (), "", "fragment index"),
        (9, "u8", "mPartialPacketNumber", (), "", "fragment count"),
        (10, "u8", "mPacketType"),
        (11, "u8", "mPacketVersion"),
    ]
)
_W4 = (4,)
_V3 = (3,)

_TELEMETRY_FINAL = BASE + fields_from_rows(
    [
        (12, "s8", "sViewedParticipantIndex"),
        (13, "u8", "sUnfilteredThrottle", (), "0..255"),
        (14, "u8", "sUnfilteredBrake", (), "0..255"),
        (15, "s8", "sUnfilteredSteering", (), "-127..127"),
        (16, "u8", "sUnfilteredClutch", (), "0..255"),
        (17, "u8", "sCarFlags"),
        (18, "s16", "sOilTempCelsius", (), "degC"),
        (20, "u16", "sOilPressureKPa", (), "kPa"),
        (22, "s16", "sWaterTempCelsius", (), "degC"),
        (24, "u16", "sWaterPressureKpa", (), "kPa"),
        (26, "u16", "sFuelPressureKpa", (), "kPa"),
        (28, "u8", "sFuelCapacity", (), "l"),
        (29, "u8", "sBrake", (), "0..255"),
        (30, "u8", "sThrottle", (), "0..255"),
        (31, "u8", "sClutch", (), "0..255"),
        (32, "f32", "sFuelLevel", (), "0..1"),
        (36, "f32", "sSpeed", (), "m/s"),
        (40, "u16", "sRpm", (), "rpm"),
        (42, "u16", "sMaxRpm", (), "rpm"),
        (44, "s8", "sSteering", (), "-127..127", "+ = right, as PCARS 1"),
        (45, "u8", "sGearNumGears", (), "", "low nibble gear (15 = R), high nibble gear count"),
        (46, "u8", "sBoostAmount"),
        (47, "u8", "sCrashState"),
        (48, "f32", "sOdometerKM", (), "km"),
        (52, "f32", "sOrientation", _V3, "rad"),
        (64, "f32", "sLocalVelocity", _V3, "m/s"),
        (76, "f32", "sWorldVelocity", _V3, "m/s"),
        (88, "f32", "sAngularVelocity", _V3, "rad/s"),
        (100, "f32", "sLocalAcceleration", _V3, "m/s^2", "x + = left, z + = backwards, as PCARS 1"),
        (112, "f32", "sWorldAcceleration", _V3, "m/s^2"),
        (124, "f32", "sExtentsCentre", _V3, "m"),
        (136, "u8", "sTyreFlags", _W4, "", "FL FR RL RR"),
        (140, "u8", "sTerrain", _W4),
        (144, "f32", "sTyreY", _W4, "m"),
        (160, "f32", "sTyreRPS", _W4, "rev/s"),
        (176, "u8", "sTyreTemp", _W4, "degC"),
        (180, "f32", "sTyreHeightAboveGround", _W4, "m"),
        (196, "u8", "sTyreWear", _W4, "0..255"),
        (200, "u8", "sBrakeDamage", _W4, "0..255"),
        (204, "u8", "sSuspensionDamage", _W4, "0..255"),
        (208, "s16", "sBrakeTempCelsius", _W4, "degC"),
        (216, "u16", "sTyreTreadTemp", _W4, "K"),
        (224, "u16", "sTyreLayerTemp", _W4, "K"),
        (232, "u16", "sTyreCarcassTemp", _W4, "K"),
        (240, "u16", "sTyreRimTemp", _W4, "K"),
        (248, "u16", "sTyreInternalAirTemp", _W4, "K"),
        (256, "u16", "sTyreTempLeft", _W4, "K"),
        (264, "u16", "sTyreTempCenter", _W4, "K"),
        (272, "u16", "sTyreTempRight", _W4, "K"),
        (280, "f32", "sWheelLocalPositionY", _W4, "m"),
        (296, "f32", "sRideHeight", _W4, "m"),
        (312, "f32", "sSuspensionTravel", _W4, "m"),
        (328, "f32", "sSuspensionVelocity", _W4, "m/s"),
        (344, "u16", "sSuspensionRideHeight", _W4),
        (352, "u16", "sAirPressure", _W4),
        (360, "f32", "sEngineSpeed", (), "rad/s"),
        (364, "f32", "sEngineTorque", (), "N m"),
        (368, "u8", "sWings", (2,)),
        (370, "u8", "sHandBrake", (), "0..255"),
        (371, "u8", "sAeroDamage", (), "0..255"),
        (372, "u8", "sEngineDamage", (), "0..255"),
        (373, "u32", "sJoyPad0", (), "", "button mask"),
        (377, "u8", "sDPad"),
        (378, ("char", 40), "sTyreCompound", _W4, "", "per-wheel compound name"),
        (538, "f32", "sTurboBoostPressure"),
        (542, "f32", "sFullPosition", _V3, "m", "full-precision world position of the viewed car"),
        (554, "u8", "sBrakeBias", (), "", "quantised"),
        (555, "u32", "sTickCount"),
    ]
)

_PARTICIPANTS_FINAL = BASE + fields_from_rows(
    [
        (12, "u32", "sParticipantsChangedTimestamp", (), "", "sync key with timings and stats"),
        (16, ("char", 64), "sName", (16,)),
        (1040, "u32", "sNationality", (16,)),
        (1104, "u16", "sIndex", (16,), "", "session-unique multiplayer index"),
    ]
)

_TIMING_MEMBERS = [
    ("sWorldPosition", 0, "s16", _V3, "m", "+ extra bits in sSector"),
    ("sOrientation", 6, "s16", _V3, "", "quantised heading, pitch, bank"),
    ("sCurrentLapDistance", 12, "u16", (), "m"),
    ("sRacePosition", 14, "u8", (), "", "bits 0-6 position, bit 7 active"),
    ("sSector", 15, "u8", (), "", "sector + extra x/z precision bits"),
    ("sHighestFlag", 16, "u8", ()),
    ("sPitModeSchedule", 17, "u8", ()),
    ("sCarIndex", 18, "u16", (), "", "bit 15 = human player"),
    ("sRaceState", 20, "u8", (), "", "race state + lap-invalid bit"),
    ("sCurrentLap", 21, "u8", ()),
    ("sCurrentTime", 22, "f32", (), "s"),
    ("sCurrentSectorTime", 26, "f32", (), "s"),
    ("sMPParticipantIndex", 30, "u16", ()),
]
_TIMINGS_HEAD = BASE + fields_from_rows(
    [
        (12, "s8", "sNumParticipants"),
        (13, "u32", "sParticipantsChangedTimestamp"),
        (17, "f32", "sEventTimeRemaining", (), "s"),
        (21, "f32", "sSplitTimeAhead", (), "s"),
        (25, "f32", "sSplitTimeBehind", (), "s"),
        (29, "f32", "sSplitTime", (), "s"),
    ]
)


def _timings(size: int) -> PacketLayout:
    record = 30 if size == 993 else 32
    members = [m for m in _TIMING_MEMBERS if m[1] < record]
    fields = _TIMINGS_HEAD + struct_array("sParticipants", 33, 32, record, members)
    tail = fields_from_rows([(1057, "u16", "sLocalParticipantIndex"), (1059, "u32", "sTickCount")])
    return PacketLayout(
        name=f"pcars2_timings_{size}",
        size=size,
        game=GAME,
        sequence=SEQUENCE,
        doc="sTimingsData: timing state of every participant.",
        fields=tuple(fields + list(truncate(tail, size))),
    )


_STATS_MEMBERS = [
    ("sFastestLapTime", 0, "f32", (), "s"),
    ("sLastLapTime", 4, "f32", (), "s"),
    ("sLastSectorTime", 8, "f32", (), "s"),
    ("sFastestSector1Time", 12, "f32", (), "s"),
    ("sFastestSector2Time", 16, "f32", (), "s"),
    ("sFastestSector3Time", 20, "f32", (), "s"),
    ("sParticipantOnlineRep", 24, "u32", (), "", "u16 rank type + u16 strength"),
    ("sMPParticipantIndex", 28, "u16", ()),
]


def _time_stats(size: int) -> PacketLayout:
    record = 24 if size == 784 else 32
    members = [m for m in _STATS_MEMBERS if m[1] < record]
    fields = BASE + fields_from_rows([(12, "u32", "sParticipantsChangedTimestamp")])
    return PacketLayout(
        name=f"pcars2_time_stats_{size}",
        size=size,
        game=GAME,
        sequence=SEQUENCE,
        doc="sTimeStatsData: lap and sector records per participant.",
        fields=tuple(fields + struct_array("sStats", 16, 32, record, members)),
    )


def _cut(name: str, size: int, fields: list[Field], doc: str) -> PacketLayout:
    fields = truncate(fields, size)
    facts = {"max_rpm": "sMaxRpm"} if any(f.name == "sMaxRpm" for f in fields) else {}
    return PacketLayout(name=f"{name}_{size}", size=size, game=GAME, doc=doc, fields=fields, sequence=SEQUENCE,
                        facts=facts)


_TELEMETRY_DOC = "sTelemetryData: the viewed car's state (538 early PC2, 555/556 mid PC2, 559 Patch 5 / AMS2)."
TELEMETRY = {s: _cut("pcars2_telemetry", s, _TELEMETRY_FINAL, _TELEMETRY_DOC) for s in (538, 555, 556, 559)}

RACE = PacketLayout(
    name="pcars2_race_308",
    size=308,
    game=GAME,
    sequence=SEQUENCE,
    doc="sRaceData: track and session definition.",
    names={"track": "sTrackLocation", "track_config": "sTrackVariation"},
    facts={"track_length_m": "sTrackLength"},
    fields=tuple(
        BASE
        + fields_from_rows(
            [
                (12, "f32", "sWorldFastestLapTime", (), "s"),
                (16, "f32", "sPersonalFastestLapTime", (), "s"),
                (20, "f32", "sPersonalFastestSector1Time", (), "s"),
                (24, "f32", "sPersonalFastestSector2Time", (), "s"),
                (28, "f32", "sPersonalFastestSector3Time", (), "s"),
                (32, "f32", "sWorldFastestSector1Time", (), "s"),
                (36, "f32", "sWorldFastestSector2Time", (), "s"),
                (40, "f32", "sWorldFastestSector3Time", (), "s"),
                (44, "f32", "sTrackLength", (), "m"),
                (48, ("char", 64), "sTrackLocation"),
                (112, ("char", 64), "sTrackVariation"),
                (176, ("char", 64), "sTranslatedTrackLocation"),
                (240, ("char", 64), "sTranslatedTrackVariation"),
                (304, "u16", "sLapsTimeInEvent", (), "", "laps, or (top bit) timed session in 5-minute units"),
                (306, "s8", "sEnforcedPitStopLap"),
            ]
        )
    ),
)

PARTICIPANTS = {
    s: _cut("pcars2_participants", s, _PARTICIPANTS_FINAL, "sParticipantsData: 16 participant names per fragment.")
    for s in (1040, 1136)
}
TIMINGS = {s: _timings(s) for s in (993, 1059, 1063)}

GAME_STATE = PacketLayout(
    name="pcars2_game_state_24",
    size=24,
    game=GAME,
    sequence=SEQUENCE,
    doc="sGameStateData: game/session state and weather.",
    fields=tuple(
        BASE
        + fields_from_rows(
            [
                (12, "u16", "mBuildVersionNumber"),
                (14, "u8", "mGameState", (), "", "bits 0-2 game state, bits 4-6 session state"),
                (15, "s8", "sAmbientTemperature", (), "degC"),
                (16, "s8", "sTrackTemperature", (), "degC"),
                (17, "u8", "sRainDensity", (), "0..255"),
                (18, "u8", "sSnowDensity", (), "0..255"),
                (19, "s8", "sWindSpeed"),
                (20, "s8", "sWindDirectionX"),
                (21, "s8", "sWindDirectionY"),
            ]
        )
    ),
)

TIME_STATS = {s: _time_stats(s) for s in (784, 1040)}

VEHICLE_NAMES = PacketLayout(
    name="pcars2_vehicle_names_1164",
    size=1164,
    game=GAME,
    sequence=SEQUENCE,
    doc="sParticipantVehicleNamesData: 16 vehicles (C layout: sClass at record offset 4; unverified).",
    fields=tuple(
        BASE
        + struct_array(
            "sVehicles",
            12,
            16,
            72,
            [("sIndex", 0, "u16", (), ""), ("sClass", 4, "u32", (), ""), ("sName", 8, ("char", 64), (), "")],
        )
    ),
)

CLASS_NAMES = PacketLayout(
    name="pcars2_class_names_1452",
    size=1452,
    game=GAME,
    sequence=SEQUENCE,
    doc="sVehicleClassNamesData: 60 class names.",
    fields=tuple(
        BASE
        + struct_array("sClasses", 12, 60, 24, [("sClassIndex", 0, "u32", (), ""), ("sName", 4, ("char", 20), (), "")])
    ),
)

#: (mPacketType, on-wire length) → layout: the auto-detection table of PROTOCOLS.md §3.10.
KINDS: dict[tuple[int, int], PacketLayout] = {
    **{(0, s): lay for s, lay in TELEMETRY.items()},
    (1, 308): RACE,
    **{(2, s): lay for s, lay in PARTICIPANTS.items()},
    **{(3, s): lay for s, lay in TIMINGS.items()},
    (4, 24): GAME_STATE,
    **{(7, s): lay for s, lay in TIME_STATS.items()},
    (8, 1164): VEHICLE_NAMES,
    (8, 1452): CLASS_NAMES,
}
