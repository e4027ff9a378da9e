"""Assetto Corsa remote telemetry (UDP 9996, "KSUDP"): handshake, RTCarInfo, RTLap.

Layouts from PROTOCOLS.md §1 (Kunos "AC UDP Sockets" document, cross-read with three public
clients). RTCarInfo is naturally aligned, so it has padding after the leading char and after the
six bools; real AC fills that padding with garbage, so it is never decoded.
"""

from __future__ import annotations

from .encode import encode
from .layout import PacketLayout, fields_from_rows

GAME = "assetto_corsa"

#: operationId values of the 12-byte handshaker the client sends.
HANDSHAKE, SUBSCRIBE_UPDATE, SUBSCRIBE_SPOT, DISMISS = 0, 1, 2, 3

HANDSHAKER = PacketLayout(
    name="ac_handshaker",
    size=12,
    game=GAME,
    doc="Client → AC request; operationId 0 handshake, 1 subscribe update, 2 subscribe spot, 3 dismiss.",
    fields=tuple(
        fields_from_rows(
            [
                (0, "s32", "identifier", (), "", "device id, unused by AC"),
                (4, "s32", "version", (), "", "unused by AC"),
                (8, "s32", "operationId", (), "", "0 handshake, 1 update, 2 spot, 3 dismiss"),
            ]
        )
    ),
)



def handshaker(operation: int) -> bytes:
    """The 12-byte client request for ``operation`` (:data:`HANDSHAKE`, :data:`SUBSCRIBE_UPDATE`,
    :data:`SUBSCRIBE_SPOT`, :data:`DISMISS`), identifier and version 1 as AC's own clients send."""
    return encode(HANDSHAKER, {"identifier": 1, "version": 1, "operationId": operation})


HANDSHAKE_RESPONSE = PacketLayout(
    name="ac_handshake_response",
    size=408,
    game=GAME,
    doc="AC → client answer to a handshake: car, driver, track, track configuration.",
    names={"car": "carName", "driver": "driverName", "track": "trackName", "track_config": "trackConfig"},
    fields=tuple(
        fields_from_rows(
            [
                (0, ("wchar", 50), "carName", (), "", "UTF-16LE, ends at '%'"),
                (100, ("wchar", 50), "driverName", (), "", "UTF-16LE, ends at '%'"),
                (200, "s32", "identifier", (), "", "observed 4242"),
                (204, "s32", "version", (), "", "observed 1"),
                (208, ("wchar", 50), "trackName", (), "", "UTF-16LE, ends at '%'"),
                (308, ("wchar", 50), "trackConfig", (), "", "UTF-16LE, ends at '%'"),
            ]
        )
    ),
)

_W4 = (4,)
CAR_INFO = PacketLayout(
    name="ac_car_info",
    size=328,
    game=GAME,
    doc="RTCarInfo: the player car's state, one per physics step after SUBSCRIBE_UPDATE.",
    fields=tuple(
        fields_from_rows(
            [
                (0, ("char", 1), "identifier", (), "", "always 'a'"),
                (4, "s32", "size", (), "B", "328"),
                (8, "f32", "speed_Kmh", (), "km/h"),
                (12, "f32", "speed_Mph", (), "mph"),
                (16, "f32", "speed_Ms", (), "m/s"),
                (20, "bool", "isAbsEnabled"),
                (21, "bool", "isAbsInAction"),
                (22, "bool", "isTcInAction"),
                (23, "bool", "isTcEnabled"),
                (24, "bool", "isInPit"),
                (25, "bool", "isEngineLimiterOn"),
                # The struct's names for these three are not what they carry (real Monza capture,
                # tests/test_physics_real.py): offset 28 follows v² × path curvature (lateral,
                # + = left), 36 follows dv/dt; 32 follows neither (the vertical axis).
                (28, "f32", "accG_vertical", (), "g", "LATERAL acceleration despite the name, + = left"),
                (32, "f32", "accG_horizontal", (), "g", "vertical acceleration despite the name"),
                (36, "f32", "accG_frontal", (), "g", "longitudinal acceleration, + = speeding up"),
                (40, "s32", "lapTime", (), "ms", "current lap time"),
                (44, "s32", "lastLap", (), "ms"),
                (48, "s32", "bestLap", (), "ms"),
                (52, "s32", "lapCount", (), "", "completed laps"),
                (56, "f32", "gas", (), "0..1"),
                (60, "f32", "brake", (), "0..1"),
                (64, "f32", "clutch", (), "0..1", "1 = released"),
                (68, "f32", "engineRPM", (), "rpm"),
                (72, "f32", "steer", (), "deg"),
                (76, "s32", "gear", (), "", "AC convention: 0 = R, 1 = N, 2 = 1st"),
                (80, "f32", "cgHeight", (), "m"),
                (84, "f32", "wheelAngularSpeed", _W4, "rad/s", "FL FR RL RR"),
                (100, "f32", "slipAngle", _W4, "deg"),
                (116, "f32", "slipAngle_ContactPatch", _W4, "deg"),
                (132, "f32", "slipRatio", _W4),
                (148, "f32", "tyreSlip", _W4),
                (164, "f32", "ndSlip", _W4),
                (180, "f32", "load", _W4, "N"),
                (196, "f32", "Dy", _W4),
                (212, "f32", "Mz", _W4, "N m", "self-aligning torque"),
                (228, "f32", "tyreDirtyLevel", _W4),
                (244, "f32", "camberRAD", _W4, "rad"),
                (260, "f32", "tyreRadius", _W4, "m"),
                (276, "f32", "tyreLoadedRadius", _W4, "m"),
                (292, "f32", "suspensionHeight", _W4, "m"),
                (308, "f32", "carPositionNormalized", (), "0..1", "along the track spline"),
                (312, "f32", "carSlope"),
                (316, "f32", "carCoordinates", (3,), "m", "world x, y, z"),
            ]
        )
    ),
)

LAP = PacketLayout(
    name="ac_lap",
    size=212,
    game=GAME,
    doc="RTLap: a lap completed by any car, after SUBSCRIBE_SPOT.",
    fields=tuple(
        fields_from_rows(
            [
                (0, "s32", "carIdentifierNumber"),
                (4, "s32", "lap"),
                (8, ("wchar", 50), "driverName", (), "", "UTF-16LE, ends at '%'"),
                (108, ("wchar", 50), "carName", (), "", "UTF-16LE, ends at '%'"),
                (208, "s32", "time", (), "ms", "lap time"),
            ]
        )
    ),
)

#: Datagrams AC sends us on the KSUDP socket, told apart by length alone (as AC clients do).
INBOUND = (HANDSHAKE_RESPONSE, CAR_INFO, LAP)
