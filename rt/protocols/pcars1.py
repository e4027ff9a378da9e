"""Project CARS 1 UDP format (port 5606; also sent by PC2/AMS2 in "Project CARS 1" mode).

Layouts from PROTOCOLS.md §2 (SMS's pCARS1 header, checked against jamesremuscat's real
fixtures). Byte 2 holds the packet type in bits 0-1 and a 6-bit sequence counter in bits 2-7,
which only telemetry packets advance (strings packets repeat the last telemetry number).
"""

from __future__ import annotations

from .layout import PacketLayout, SequenceCounter, fields_from_rows, struct_array

GAME = "project_cars_1"

TYPE_TELEMETRY, TYPE_STRINGS, TYPE_STRINGS_ADDITIONAL = 0, 1, 2

_HEADER = [
    (0, "u16", "sBuildVersionNumber", (), "", "game build"),
    (2, "u8", "sPacketType", (), "", "bits 0-1 type, bits 2-7 sequence counter"),
]
_W4 = (4,)
_V3 = (3,)

TELEMETRY = PacketLayout(
    name="pcars1_telemetry",
    size=1367,
    game=GAME,
    doc="sTelemetryData: the viewed car's state plus 56 participant records.",
    # Only telemetry advances the 6-bit counter: in real streams (the Spa capture) a strings
    # packet repeats the number of the telemetry packet before it.
    sequence=SequenceCounter("sPacketType", "pcars1", modulo=64, shift=2),
    facts={"max_rpm": "sMaxRpm", "track_length_m": "sTrackLength"},
    sectors=("sCurrentSector1Time", "sCurrentSector2Time", "sCurrentSector3Time"),
    fields=tuple(
        fields_from_rows(
            _HEADER
            + [
                (3, "u8", "sGameSessionState", (), "", "bits 0-2 game state, bits 4-6 session state"),
                (4, "s8", "sViewedParticipantIndex"),
                (5, "s8", "sNumParticipants", (), "", "-1 in menus"),
                (6, "u8", "sUnfilteredThrottle", (), "0..255"),
                (7, "u8", "sUnfilteredBrake", (), "0..255"),
                (8, "s8", "sUnfilteredSteering", (), "-127..127"),
                (9, "u8", "sUnfilteredClutch", (), "0..255"),
                (10, "u8", "sRaceStateFlags", (), "", "bits 0-2 race state, bit 3 lap invalidated"),
                (11, "u8", "sLapsInEvent"),
                (12, "f32", "sBestLapTime", (), "s", "-1 = none"),
                (16, "f32", "sLastLapTime", (), "s"),
                (20, "f32", "sCurrentTime", (), "s"),
                (24, "f32", "sSplitTimeAhead", (), "s"),
                (28, "f32", "sSplitTimeBehind", (), "s"),
                (32, "f32", "sSplitTime", (), "s"),
                (36, "f32", "sEventTimeRemaining", (), "s"),
                (40, "f32", "sPersonalFastestLapTime", (), "s"),
                (44, "f32", "sWorldFastestLapTime", (), "s"),
                (48, "f32", "sCurrentSector1Time", (), "s"),
                (52, "f32", "sCurrentSector2Time", (), "s"),
                (56, "f32", "sCurrentSector3Time", (), "s"),
                (60, "f32", "sFastestSector1Time", (), "s"),
                (64, "f32", "sFastestSector2Time", (), "s"),
                (68, "f32", "sFastestSector3Time", (), "s"),
                (72, "f32", "sPersonalFastestSector1Time", (), "s"),
                (76, "f32", "sPersonalFastestSector2Time", (), "s"),
                (80, "f32", "sPersonalFastestSector3Time", (), "s"),
                (84, "f32", "sWorldFastestSector1Time", (), "s"),
                (88, "f32", "sWorldFastestSector2Time", (), "s"),
                (92, "f32", "sWorldFastestSector3Time", (), "s"),
                (96, "u16", "sJoyPad", (), "", "button bitmask"),
                (98, "u8", "sHighestFlag"),
                (99, "u8", "sPitModeSchedule"),
                (100, "s16", "sOilTempCelsius", (), "degC"),
                (102, "u16", "sOilPressureKPa", (), "kPa"),
                (104, "s16", "sWaterTempCelsius", (), "degC"),
                (106, "u16", "sWaterPressureKpa", (), "kPa"),
                (108, "u16", "sFuelPressureKpa", (), "kPa"),
                (110, "u8", "sCarFlags"),
                (111, "u8", "sFuelCapacity", (), "l"),
                (112, "u8", "sBrake", (), "0..255"),
                (113, "u8", "sThrottle", (), "0..255"),
                (114, "u8", "sClutch", (), "0..255"),
                (115, "s8", "sSteering", (), "-127..127", "+ = right (real Spa capture)"),
                (116, "f32", "sFuelLevel", (), "0..1"),
                (120, "f32", "sSpeed", (), "m/s"),
                (124, "u16", "sRpm", (), "rpm"),
                (126, "u16", "sMaxRpm", (), "rpm"),
                (128, "u8", "sGearNumGears", (), "", "low nibble gear (15 = R), high nibble gear count"),
                (129, "u8", "sBoostAmount"),
                (130, "s8", "sEnforcedPitStopLap"),
                (131, "u8", "sCrashState"),
                (132, "f32", "sOdometerKM", (), "km"),
                (136, "f32", "sOrientation", _V3, "rad"),
                (148, "f32", "sLocalVelocity", _V3, "m/s"),
                (160, "f32", "sWorldVelocity", _V3, "m/s"),
                (172, "f32", "sAngularVelocity", _V3, "rad/s"),
                (184, "f32", "sLocalAcceleration", _V3, "m/s^2", "x + = left, z + = backwards"),
                (196, "f32", "sWorldAcceleration", _V3, "m/s^2"),
                (208, "f32", "sExtentsCentre", _V3, "m"),
                (220, "u8", "sTyreFlags", _W4, "", "FL FR RL RR"),
                (224, "u8", "sTerrain", _W4),
                (228, "f32", "sTyreY", _W4, "m"),
                (244, "f32", "sTyreRPS", _W4, "rev/s"),
                (260, "f32", "sTyreSlipSpeed", _W4, "m/s"),
                (276, "u8", "sTyreTemp", _W4, "degC"),
                (280, "u8", "sTyreGrip", _W4, "0..255"),
                (284, "f32", "sTyreHeightAboveGround", _W4, "m"),
                (300, "f32", "sTyreLateralStiffness", _W4),
                (316, "u8", "sTyreWear", _W4, "0..255"),
                (320, "u8", "sBrakeDamage", _W4, "0..255"),
                (324, "u8", "sSuspensionDamage", _W4, "0..255"),
                (328, "s16", "sBrakeTempCelsius", _W4, "degC"),
                (336, "u16", "sTyreTreadTemp", _W4, "K"),
                (344, "u16", "sTyreLayerTemp", _W4, "K"),
                (352, "u16", "sTyreCarcassTemp", _W4, "K"),
                (360, "u16", "sTyreRimTemp", _W4, "K"),
                (368, "u16", "sTyreInternalAirTemp", _W4, "K"),
                (376, "f32", "sWheelLocalPositionY", _W4, "m"),
                (392, "f32", "sRideHeight", _W4, "m"),
                (408, "f32", "sSuspensionTravel", _W4, "m"),
                (424, "f32", "sSuspensionVelocity", _W4, "m/s"),
                (440, "u16", "sAirPressure", _W4),
                (448, "f32", "sEngineSpeed", (), "rad/s"),
                (452, "f32", "sEngineTorque", (), "N m"),
                (456, "u8", "sAeroDamage", (), "0..255"),
                (457, "u8", "sEngineDamage", (), "0..255"),
                (458, "s8", "sAmbientTemperature", (), "degC"),
                (459, "s8", "sTrackTemperature", (), "degC"),
                (460, "u8", "sRainDensity", (), "0..255"),
                (461, "s8", "sWindSpeed", (), "", "speed x 0.5"),
                (462, "s8", "sWindDirectionX", (), "", "x 127"),
                (463, "s8", "sWindDirectionY", (), "", "x 127"),
            ]
        )
        + struct_array(
            "sParticipantInfo",
            base=464,
            count=56,
            record_size=16,
            members=[
                ("sWorldPosition", 0, "s16", (3,), "m", "x, y, z; 2 extra fraction bits of x, z in sSector"),
                ("sCurrentLapDistance", 6, "u16", (), "m"),
                ("sRacePosition", 8, "u8", (), "", "bits 0-6 position, bit 7 active"),
                ("sLapsCompleted", 9, "u8", (), "", "bits 0-6 laps, bit 7 lap invalidated"),
                ("sCurrentLap", 10, "u8", ()),
                ("sSector", 11, "u8", (), "", "bits 0-2 sector, bits 4-5 z 1/4 m, bits 6-7 x 1/4 m"),
                ("sLastSectorTime", 12, "f32", (), "s"),
            ],
        )
        + fields_from_rows(
            [
                (1360, "f32", "sTrackLength", (), "m"),
                (1364, "u8", "sWings", (2,)),
                (1366, "u8", "sDPad", (), "", "d-pad bitmask"),
            ]
        )
    ),
)

STRINGS = PacketLayout(
    name="pcars1_participant_strings",
    size=1347,
    game=GAME,
    doc="sParticipantInfoStrings: car, class, track and the first 16 participant names.",
    names={"car": "sCarName", "track": "sTrackLocation", "track_config": "sTrackVariation"},
    fields=tuple(
        fields_from_rows(
            _HEADER
            + [
                (3, ("char", 64), "sCarName"),
                (67, ("char", 64), "sCarClassName"),
                (131, ("char", 64), "sTrackLocation"),
                (195, ("char", 64), "sTrackVariation"),
                (259, ("char", 64), "sName", (16,), "", "participants 0..15"),
                (1283, "f32", "sFastestLapTime", (16,), "s", "participants 0..15"),
            ]
        )
    ),
)

STRINGS_ADDITIONAL = PacketLayout(
    name="pcars1_participant_strings_additional",
    size=1028,
    game=GAME,
    doc="sParticipantInfoStringsAdditional: 16 more participant names from sOffset on.",
    fields=tuple(
        fields_from_rows(
            _HEADER
            + [
                (3, "u8", "sOffset", (), "", "index of the first name: 16, 32, 48"),
                (4, ("char", 64), "sName", (16,), "", "participants sOffset..sOffset+15"),
            ]
        )
    ),
)

#: (layout, packet type in bits 0-1 of byte 2); sizes are unique, the type bits guard against foreign traffic.
KINDS = ((TELEMETRY, TYPE_TELEMETRY), (STRINGS, TYPE_STRINGS), (STRINGS_ADDITIONAL, TYPE_STRINGS_ADDITIONAL))
