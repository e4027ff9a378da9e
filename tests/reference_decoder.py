"""Reference decoder for the recorder's packet kinds, used only by the tests.

It cross-checks the project's Cython decoder (``rt``) on random packets
(hypothesis) and on the real captures (read from the shared captures folder, see ``captures.py``).  It is
written straight from the byte tables of the project brief's ``PROTOCOLS.md``
(sections 1 to 4) and deliberately shares no code, constants or layout tables
with ``rt`` / ``rt_ext``: a bug there must not be copied here.

Pure Python, standard library ``struct`` only, little-endian, no alignment.
Each kind is one hand-written block: one row per field, giving the spec's
offset, the field name and its ``struct`` piece.  The pieces are concatenated
into one ``struct.Struct`` per kind; at import time every row's offset is
checked against ``calcsize`` of the pieces before it, and the total against
the kind's size.

Values returned by :func:`decode`:

* scalar fields -> ``int`` / ``float`` (f32 exactly as ``struct`` gives it;
  AC bools -> the raw u8 as ``int``);
* fixed arrays -> ``tuple``; ``char[n]`` / ``wchar[n]`` -> the raw ``bytes``
  (n, resp. 2n bytes), nothing stripped; an array of strings -> tuple of bytes;
* a single ``char`` (AC RTCarInfo ``identifier``) -> ``bytes`` of length 1
  (it is a ``char[1]``), e.g. ``b"a"``;
* arrays of structs are flattened to ``"<array>.<member>"`` entries, each a
  tuple over the array elements (tuple of tuples when the member is itself an
  array);
* padding bytes are never output.
"""

import re
import struct

__all__ = ["KINDS", "decode"]


# --------------------------------------------------------------------------
# Layout description helpers.
#
#   F(offset, name, piece)          one field; piece is a single struct code
#                                   with an optional count: "H", "4f", "64s".
#   F(offset, name, piece, times)   an array of strings: piece repeated
#                                   `times` times -> tuple of bytes.
#   PAD(offset, nbytes)             padding, never output.
#   R(offset, name, n, size, [...]) array of n structs of `size` bytes; the
#                                   member rows use offsets inside the record.
# --------------------------------------------------------------------------

_PIECE = re.compile(r"^(\d*)([bBhHiIfcsx])$")


class F:
    def __init__(self, offset, name, piece, times=None):
        self.offset, self.name, self.piece, self.times = offset, name, piece, times
        m = _PIECE.match(piece)
        if m is None:
            raise ValueError("bad struct piece %r for %s" % (piece, name))
        count, code = m.groups()
        if code in "sc":
            # One bytes value per piece.
            self.shape = "bytes" if times is None else ("strings", times)
        elif count:
            if times is not None:
                raise ValueError("times only for strings: %s" % name)
            self.shape = ("array", int(count))
        else:
            self.shape = "scalar"
        self.fmt = piece * (times or 1)

    @property
    def nvalues(self):
        if self.shape in ("scalar", "bytes"):
            return 1
        return self.shape[1]

    def take(self, values, i):
        """Return (value, next index) for this field starting at values[i]."""
        if self.shape in ("scalar", "bytes"):
            return values[i], i + 1
        n = self.shape[1]
        return tuple(values[i:i + n]), i + n


class PAD:
    name = None
    nvalues = 0

    def __init__(self, offset, nbytes):
        self.offset, self.fmt = offset, "%dx" % nbytes


class R:
    def __init__(self, offset, name, n, size, members):
        self.offset, self.name, self.n, self.size, self.members = offset, name, n, size, members
        rec_fmt = _check_rows(name, members, size)
        self.fmt = rec_fmt * n


def _check_rows(what, rows, size):
    """Concatenate the rows' struct pieces, checking every spec offset."""
    fmt = ""
    for row in rows:
        got = struct.calcsize("<" + fmt)
        assert got == row.offset, "%s: %s at %d, spec says %d" % (what, row.name, got, row.offset)
        fmt += row.fmt
    got = struct.calcsize("<" + fmt)
    assert got == size, "%s: %d bytes, spec says %d" % (what, got, size)
    return fmt


class _Kind:
    def __init__(self, name, size, rows):
        self.name, self.size, self.rows = name, size, rows
        self.struct = struct.Struct("<" + _check_rows(name, rows, size))
        assert self.struct.size == size
        names = []
        for row in rows:
            if isinstance(row, R):
                names.extend("%s.%s" % (row.name, m.name) for m in row.members if m.name)
            elif row.name:
                names.append(row.name)
        assert len(names) == len(set(names)), "%s: duplicate field names" % name
        self.field_names = tuple(names)

    def decode(self, payload):
        values = self.struct.unpack(payload)
        out = {}
        i = 0
        for row in self.rows:
            if isinstance(row, R):
                members = [m for m in row.members if m.name]
                cols = {m.name: [] for m in members}
                for _ in range(row.n):
                    for m in row.members:
                        if m.name:
                            v, i = m.take(values, i)
                            cols[m.name].append(v)
                for m in members:
                    out["%s.%s" % (row.name, m.name)] = tuple(cols[m.name])
            elif row.name:
                out[row.name], i = row.take(values, i)
        assert i == len(values)
        return out


# ==========================================================================
# 1. Assetto Corsa remote telemetry (port 9996)
# ==========================================================================

# 1.2 Handshaker (client -> AC), 12 bytes, <iii
AC_HANDSHAKER = [
    F(0, "identifier", "i"),
    F(4, "version", "i"),
    F(8, "operationId", "i"),
]

# 1.3 Handshake response, 408 bytes, <100s100sii100s100s (wchar[50] = 100 B)
AC_HANDSHAKE_RESPONSE = [
    F(0, "carName", "100s"),
    F(100, "driverName", "100s"),
    F(200, "identifier", "i"),
    F(204, "version", "i"),
    F(208, "trackName", "100s"),
    F(308, "trackConfig", "100s"),
]

# 1.4 RTCarInfo, 328 bytes, natural C alignment (3 pad after the char,
# 2 pad after the six bools).
AC_CAR_INFO = [
    F(0, "identifier", "c"),
    PAD(1, 3),
    F(4, "size", "i"),
    F(8, "speed_Kmh", "f"),
    F(12, "speed_Mph", "f"),
    F(16, "speed_Ms", "f"),
    F(20, "isAbsEnabled", "B"),
    F(21, "isAbsInAction", "B"),
    F(22, "isTcInAction", "B"),
    F(23, "isTcEnabled", "B"),
    F(24, "isInPit", "B"),
    F(25, "isEngineLimiterOn", "B"),
    PAD(26, 2),
    F(28, "accG_vertical", "f"),
    F(32, "accG_horizontal", "f"),
    F(36, "accG_frontal", "f"),
    F(40, "lapTime", "i"),
    F(44, "lastLap", "i"),
    F(48, "bestLap", "i"),
    F(52, "lapCount", "i"),
    F(56, "gas", "f"),
    F(60, "brake", "f"),
    F(64, "clutch", "f"),
    F(68, "engineRPM", "f"),
    F(72, "steer", "f"),
    F(76, "gear", "i"),
    F(80, "cgHeight", "f"),
    F(84, "wheelAngularSpeed", "4f"),
    F(100, "slipAngle", "4f"),
    F(116, "slipAngle_ContactPatch", "4f"),
    F(132, "slipRatio", "4f"),
    F(148, "tyreSlip", "4f"),
    F(164, "ndSlip", "4f"),
    F(180, "load", "4f"),
    F(196, "Dy", "4f"),
    F(212, "Mz", "4f"),
    F(228, "tyreDirtyLevel", "4f"),
    F(244, "camberRAD", "4f"),
    F(260, "tyreRadius", "4f"),
    F(276, "tyreLoadedRadius", "4f"),
    F(292, "suspensionHeight", "4f"),
    F(308, "carPositionNormalized", "f"),
    F(312, "carSlope", "f"),
    F(316, "carCoordinates", "3f"),
]

# 1.5 RTLap, 212 bytes, <ii100s100si
AC_LAP = [
    F(0, "carIdentifierNumber", "i"),
    F(4, "lap", "i"),
    F(8, "driverName", "100s"),
    F(108, "carName", "100s"),
    F(208, "time", "i"),
]


# ==========================================================================
# 2. Project CARS 1 (port 5606)
# ==========================================================================

# 2.1 sTelemetryData (type 0), 1367 bytes sent (C struct is 1368 in memory).
PCARS1_PARTICIPANT_INFO = [  # 16 bytes, <3hHBBBBf
    F(0, "sWorldPosition", "3h"),
    F(6, "sCurrentLapDistance", "H"),
    F(8, "sRacePosition", "B"),
    F(9, "sLapsCompleted", "B"),
    F(10, "sCurrentLap", "B"),
    F(11, "sSector", "B"),
    F(12, "sLastSectorTime", "f"),
]

PCARS1_TELEMETRY = [
    F(0, "sBuildVersionNumber", "H"),
    F(2, "sPacketType", "B"),
    F(3, "sGameSessionState", "B"),
    F(4, "sViewedParticipantIndex", "b"),
    F(5, "sNumParticipants", "b"),
    F(6, "sUnfilteredThrottle", "B"),
    F(7, "sUnfilteredBrake", "B"),
    F(8, "sUnfilteredSteering", "b"),
    F(9, "sUnfilteredClutch", "B"),
    F(10, "sRaceStateFlags", "B"),
    F(11, "sLapsInEvent", "B"),
    F(12, "sBestLapTime", "f"),
    F(16, "sLastLapTime", "f"),
    F(20, "sCurrentTime", "f"),
    F(24, "sSplitTimeAhead", "f"),
    F(28, "sSplitTimeBehind", "f"),
    F(32, "sSplitTime", "f"),
    F(36, "sEventTimeRemaining", "f"),
    F(40, "sPersonalFastestLapTime", "f"),
    F(44, "sWorldFastestLapTime", "f"),
    F(48, "sCurrentSector1Time", "f"),
    F(52, "sCurrentSector2Time", "f"),
    F(56, "sCurrentSector3Time", "f"),
    F(60, "sFastestSector1Time", "f"),
    F(64, "sFastestSector2Time", "f"),
    F(68, "sFastestSector3Time", "f"),
    F(72, "sPersonalFastestSector1Time", "f"),
    F(76, "sPersonalFastestSector2Time", "f"),
    F(80, "sPersonalFastestSector3Time", "f"),
    F(84, "sWorldFastestSector1Time", "f"),
    F(88, "sWorldFastestSector2Time", "f"),
    F(92, "sWorldFastestSector3Time", "f"),
    F(96, "sJoyPad", "H"),
    F(98, "sHighestFlag", "B"),
    F(99, "sPitModeSchedule", "B"),
    F(100, "sOilTempCelsius", "h"),
    F(102, "sOilPressureKPa", "H"),
    F(104, "sWaterTempCelsius", "h"),
    F(106, "sWaterPressureKpa", "H"),
    F(108, "sFuelPressureKpa", "H"),
    F(110, "sCarFlags", "B"),
    F(111, "sFuelCapacity", "B"),
    F(112, "sBrake", "B"),
    F(113, "sThrottle", "B"),
    F(114, "sClutch", "B"),
    F(115, "sSteering", "b"),
    F(116, "sFuelLevel", "f"),
    F(120, "sSpeed", "f"),
    F(124, "sRpm", "H"),
    F(126, "sMaxRpm", "H"),
    F(128, "sGearNumGears", "B"),
    F(129, "sBoostAmount", "B"),
    F(130, "sEnforcedPitStopLap", "b"),
    F(131, "sCrashState", "B"),
    F(132, "sOdometerKM", "f"),
    F(136, "sOrientation", "3f"),
    F(148, "sLocalVelocity", "3f"),
    F(160, "sWorldVelocity", "3f"),
    F(172, "sAngularVelocity", "3f"),
    F(184, "sLocalAcceleration", "3f"),
    F(196, "sWorldAcceleration", "3f"),
    F(208, "sExtentsCentre", "3f"),
    F(220, "sTyreFlags", "4B"),
    F(224, "sTerrain", "4B"),
    F(228, "sTyreY", "4f"),
    F(244, "sTyreRPS", "4f"),
    F(260, "sTyreSlipSpeed", "4f"),
    F(276, "sTyreTemp", "4B"),
    F(280, "sTyreGrip", "4B"),
    F(284, "sTyreHeightAboveGround", "4f"),
    F(300, "sTyreLateralStiffness", "4f"),
    F(316, "sTyreWear", "4B"),
    F(320, "sBrakeDamage", "4B"),
    F(324, "sSuspensionDamage", "4B"),
    F(328, "sBrakeTempCelsius", "4h"),
    F(336, "sTyreTreadTemp", "4H"),
    F(344, "sTyreLayerTemp", "4H"),
    F(352, "sTyreCarcassTemp", "4H"),
    F(360, "sTyreRimTemp", "4H"),
    F(368, "sTyreInternalAirTemp", "4H"),
    F(376, "sWheelLocalPositionY", "4f"),
    F(392, "sRideHeight", "4f"),
    F(408, "sSuspensionTravel", "4f"),
    F(424, "sSuspensionVelocity", "4f"),
    F(440, "sAirPressure", "4H"),
    F(448, "sEngineSpeed", "f"),
    F(452, "sEngineTorque", "f"),
    F(456, "sAeroDamage", "B"),
    F(457, "sEngineDamage", "B"),
    F(458, "sAmbientTemperature", "b"),
    F(459, "sTrackTemperature", "b"),
    F(460, "sRainDensity", "B"),
    F(461, "sWindSpeed", "b"),
    F(462, "sWindDirectionX", "b"),
    F(463, "sWindDirectionY", "b"),
    R(464, "sParticipantInfo", 56, 16, PCARS1_PARTICIPANT_INFO),
    F(1360, "sTrackLength", "f"),
    F(1364, "sWings", "2B"),
    F(1366, "sDPad", "B"),
]

# 2.2 sParticipantInfoStrings (type 1), 1347 bytes
PCARS1_PARTICIPANT_STRINGS = [
    F(0, "sBuildVersionNumber", "H"),
    F(2, "sPacketType", "B"),
    F(3, "sCarName", "64s"),
    F(67, "sCarClassName", "64s"),
    F(131, "sTrackLocation", "64s"),
    F(195, "sTrackVariation", "64s"),
    F(259, "sName", "64s", 16),
    F(1283, "sFastestLapTime", "16f"),
]

# 2.3 sParticipantInfoStringsAdditional (type 2), 1028 bytes
PCARS1_PARTICIPANT_STRINGS_ADDITIONAL = [
    F(0, "sBuildVersionNumber", "H"),
    F(2, "sPacketType", "B"),
    F(3, "sOffset", "B"),
    F(4, "sName", "64s", 16),
]


# ==========================================================================
# 3. Project CARS 2 native (port 5606)
# ==========================================================================

# 3.1 PacketBase, first 12 bytes of every packet, <IIBBBB
PCARS2_BASE = [
    F(0, "mPacketNumber", "I"),
    F(4, "mCategoryPacketNumber", "I"),
    F(8, "mPartialPacketIndex", "B"),
    F(9, "mPartialPacketNumber", "B"),
    F(10, "mPacketType", "B"),
    F(11, "mPacketVersion", "B"),
]

# 3.3 sTelemetryData (type 0), pack(1).  538 = the first block only.
PCARS2_TELEMETRY_538 = PCARS2_BASE + [
    F(12, "sViewedParticipantIndex", "b"),
    F(13, "sUnfilteredThrottle", "B"),
    F(14, "sUnfilteredBrake", "B"),
    F(15, "sUnfilteredSteering", "b"),
    F(16, "sUnfilteredClutch", "B"),
    F(17, "sCarFlags", "B"),
    F(18, "sOilTempCelsius", "h"),
    F(20, "sOilPressureKPa", "H"),
    F(22, "sWaterTempCelsius", "h"),
    F(24, "sWaterPressureKpa", "H"),
    F(26, "sFuelPressureKpa", "H"),
    F(28, "sFuelCapacity", "B"),
    F(29, "sBrake", "B"),
    F(30, "sThrottle", "B"),
    F(31, "sClutch", "B"),
    F(32, "sFuelLevel", "f"),
    F(36, "sSpeed", "f"),
    F(40, "sRpm", "H"),
    F(42, "sMaxRpm", "H"),
    F(44, "sSteering", "b"),
    F(45, "sGearNumGears", "B"),
    F(46, "sBoostAmount", "B"),
    F(47, "sCrashState", "B"),
    F(48, "sOdometerKM", "f"),
    F(52, "sOrientation", "3f"),
    F(64, "sLocalVelocity", "3f"),
    F(76, "sWorldVelocity", "3f"),
    F(88, "sAngularVelocity", "3f"),
    F(100, "sLocalAcceleration", "3f"),
    F(112, "sWorldAcceleration", "3f"),
    F(124, "sExtentsCentre", "3f"),
    F(136, "sTyreFlags", "4B"),
    F(140, "sTerrain", "4B"),
    F(144, "sTyreY", "4f"),
    F(160, "sTyreRPS", "4f"),
    F(176, "sTyreTemp", "4B"),
    F(180, "sTyreHeightAboveGround", "4f"),
    F(196, "sTyreWear", "4B"),
    F(200, "sBrakeDamage", "4B"),
    F(204, "sSuspensionDamage", "4B"),
    F(208, "sBrakeTempCelsius", "4h"),
    F(216, "sTyreTreadTemp", "4H"),
    F(224, "sTyreLayerTemp", "4H"),
    F(232, "sTyreCarcassTemp", "4H"),
    F(240, "sTyreRimTemp", "4H"),
    F(248, "sTyreInternalAirTemp", "4H"),
    F(256, "sTyreTempLeft", "4H"),
    F(264, "sTyreTempCenter", "4H"),
    F(272, "sTyreTempRight", "4H"),
    F(280, "sWheelLocalPositionY", "4f"),
    F(296, "sRideHeight", "4f"),
    F(312, "sSuspensionTravel", "4f"),
    F(328, "sSuspensionVelocity", "4f"),
    F(344, "sSuspensionRideHeight", "4H"),
    F(352, "sAirPressure", "4H"),
    F(360, "sEngineSpeed", "f"),
    F(364, "sEngineTorque", "f"),
    F(368, "sWings", "2B"),
    F(370, "sHandBrake", "B"),
    F(371, "sAeroDamage", "B"),
    F(372, "sEngineDamage", "B"),
    F(373, "sJoyPad0", "I"),  # header comment says 376: wrong under pack(1)
    F(377, "sDPad", "B"),
    F(378, "sTyreCompound", "40s", 4),
]

# 555 (intermediate header; its constant says 556) appends three fields.
PCARS2_TELEMETRY_555 = PCARS2_TELEMETRY_538 + [
    F(538, "sTurboBoostPressure", "f"),
    F(542, "sFullPosition", "3f"),
    F(554, "sBrakeBias", "B"),
]

# 556 = the 555 layout followed by 1 unused byte.
PCARS2_TELEMETRY_556 = PCARS2_TELEMETRY_555 + [
    PAD(555, 1),
]

# 559 (final, "Patch 5" / AMS2) adds sTickCount right after sBrakeBias.
PCARS2_TELEMETRY_559 = PCARS2_TELEMETRY_555 + [
    F(555, "sTickCount", "I"),
]

# 3.4 sRaceData (type 1), 308 bytes, natural alignment, 1 trailing pad byte
PCARS2_RACE = PCARS2_BASE + [
    F(12, "sWorldFastestLapTime", "f"),
    F(16, "sPersonalFastestLapTime", "f"),
    F(20, "sPersonalFastestSector1Time", "f"),
    F(24, "sPersonalFastestSector2Time", "f"),
    F(28, "sPersonalFastestSector3Time", "f"),
    F(32, "sWorldFastestSector1Time", "f"),
    F(36, "sWorldFastestSector2Time", "f"),
    F(40, "sWorldFastestSector3Time", "f"),
    F(44, "sTrackLength", "f"),
    F(48, "sTrackLocation", "64s"),
    F(112, "sTrackVariation", "64s"),
    F(176, "sTranslatedTrackLocation", "64s"),
    F(240, "sTranslatedTrackVariation", "64s"),
    F(304, "sLapsTimeInEvent", "H"),
    F(306, "sEnforcedPitStopLap", "b"),
    PAD(307, 1),
]

# 3.5 sParticipantsData (type 2): 1040 = the first three rows, 1136 = all.
PCARS2_PARTICIPANTS_1040 = PCARS2_BASE + [
    F(12, "sParticipantsChangedTimestamp", "I"),
    F(16, "sName", "64s", 16),
]

PCARS2_PARTICIPANTS_1136 = PCARS2_PARTICIPANTS_1040 + [
    F(1040, "sNationality", "16I"),
    F(1104, "sIndex", "16H"),
]

# 3.6 sTimingsData (type 3), pack(1).
PCARS2_TIMINGS_PARTICIPANT_30 = [  # initial version, 30 bytes
    F(0, "sWorldPosition", "3h"),
    F(6, "sOrientation", "3h"),
    F(12, "sCurrentLapDistance", "H"),
    F(14, "sRacePosition", "B"),
    F(15, "sSector", "B"),
    F(16, "sHighestFlag", "B"),
    F(17, "sPitModeSchedule", "B"),
    F(18, "sCarIndex", "H"),
    F(20, "sRaceState", "B"),
    F(21, "sCurrentLap", "B"),
    F(22, "sCurrentTime", "f"),
    F(26, "sCurrentSectorTime", "f"),
]

PCARS2_TIMINGS_PARTICIPANT_32 = PCARS2_TIMINGS_PARTICIPANT_30 + [
    F(30, "sMPParticipantIndex", "H"),
]

PCARS2_TIMINGS_HEAD = PCARS2_BASE + [
    F(12, "sNumParticipants", "b"),
    F(13, "sParticipantsChangedTimestamp", "I"),  # unaligned
    F(17, "sEventTimeRemaining", "f"),
    F(21, "sSplitTimeAhead", "f"),
    F(25, "sSplitTimeBehind", "f"),
    F(29, "sSplitTime", "f"),
]

PCARS2_TIMINGS_993 = PCARS2_TIMINGS_HEAD + [
    R(33, "sParticipants", 32, 30, PCARS2_TIMINGS_PARTICIPANT_30),
]

PCARS2_TIMINGS_1059 = PCARS2_TIMINGS_HEAD + [
    R(33, "sParticipants", 32, 32, PCARS2_TIMINGS_PARTICIPANT_32),
    F(1057, "sLocalParticipantIndex", "H"),
]

PCARS2_TIMINGS_1063 = PCARS2_TIMINGS_1059 + [
    F(1059, "sTickCount", "I"),
]

# 3.7 sGameStateData (type 4), 24 bytes, 2 trailing pad bytes.
# mGameState at 14 (the C layout), not 15 as the header comments say.
PCARS2_GAME_STATE = PCARS2_BASE + [
    F(12, "mBuildVersionNumber", "H"),
    F(14, "mGameState", "B"),
    F(15, "sAmbientTemperature", "b"),
    F(16, "sTrackTemperature", "b"),
    F(17, "sRainDensity", "B"),
    F(18, "sSnowDensity", "B"),
    F(19, "sWindSpeed", "b"),
    F(20, "sWindDirectionX", "b"),
    F(21, "sWindDirectionY", "b"),
    PAD(22, 2),
]

# 3.8 sTimeStatsData (type 7), natural alignment.
PCARS2_STATS_24 = [  # initial version: the six f32 members only
    F(0, "sFastestLapTime", "f"),
    F(4, "sLastLapTime", "f"),
    F(8, "sLastSectorTime", "f"),
    F(12, "sFastestSector1Time", "f"),
    F(16, "sFastestSector2Time", "f"),
    F(20, "sFastestSector3Time", "f"),
]

PCARS2_STATS_32 = PCARS2_STATS_24 + [
    F(24, "sParticipantOnlineRep", "I"),  # u16 rank type + u16 strength, kept as one u32
    F(28, "sMPParticipantIndex", "H"),
    PAD(30, 2),
]

PCARS2_TIME_STATS_784 = PCARS2_BASE + [
    F(12, "sParticipantsChangedTimestamp", "I"),
    R(16, "sStats", 32, 24, PCARS2_STATS_24),
]

PCARS2_TIME_STATS_1040 = PCARS2_BASE + [
    F(12, "sParticipantsChangedTimestamp", "I"),
    R(16, "sStats", 32, 32, PCARS2_STATS_32),
]

# 3.9 type 8, told apart by length.
# sVehicleInfo, 72 bytes, C layout (NOT the header comments' sClass at 2).
PCARS2_VEHICLE_INFO = [
    F(0, "sIndex", "H"),
    PAD(2, 2),
    F(4, "sClass", "I"),
    F(8, "sName", "64s"),
]

PCARS2_VEHICLE_NAMES = PCARS2_BASE + [
    R(12, "sVehicles", 16, 72, PCARS2_VEHICLE_INFO),
]

PCARS2_CLASS_INFO = [  # 24 bytes
    F(0, "sClassIndex", "I"),
    F(4, "sName", "20s"),
]

PCARS2_CLASS_NAMES = PCARS2_BASE + [
    R(12, "sClasses", 60, 24, PCARS2_CLASS_INFO),
]


# ==========================================================================
# 4. "Telemetry Tool" AC app feed (port 10101), PROVISIONAL layout, packed
# ==========================================================================

TT_DRIVER = [
    F(0, "version", "B"),
    F(1, "packet_id", "i"),
    F(5, "speed_kmh", "f"),
    F(9, "rpm", "f"),
    F(13, "gear", "i"),
    F(17, "gas", "f"),
    F(21, "brake", "f"),
    F(25, "clutch", "f"),
    F(29, "steer", "f"),
    F(33, "lap_count", "i"),
    F(37, "lap_time_ms", "i"),
    F(41, "last_lap_ms", "i"),
    F(45, "best_lap_ms", "i"),
    F(49, "spline_position", "f"),
    F(53, "world_position", "3f"),
    F(65, "velocity", "3f"),
    F(77, "acc_g", "3f"),
    F(89, "tyre_core_temp", "4f"),
    F(105, "tyre_pressure", "4f"),
    F(121, "tyre_wear", "4f"),
    F(137, "tyre_slip_ratio", "4f"),
    F(153, "wheel_load", "4f"),
    F(169, "suspension_travel", "4f"),
    F(185, "brake_temp", "4f"),
    F(201, "wheel_angular_speed", "4f"),
    F(217, "camber", "4f"),
    F(233, "fuel", "f"),
    F(237, "turbo_boost", "f"),
    F(241, "drs", "f"),
    F(245, "is_in_pit", "i"),
    F(249, "is_in_pit_lane", "i"),
    F(253, "lap_invalidated", "i"),
    F(257, "heading", "f"),
    F(261, "pitch", "f"),
    F(265, "roll", "f"),
    F(269, "ride_height", "4f"),
    F(285, "session_time_left", "f"),
    F(289, "performance_meter", "f"),
    F(293, "reserved", "16f"),
]


# ==========================================================================
# Registry
# ==========================================================================

_KIND_LIST = [
    _Kind("ac_handshaker", 12, AC_HANDSHAKER),
    _Kind("ac_handshake_response", 408, AC_HANDSHAKE_RESPONSE),
    _Kind("ac_car_info", 328, AC_CAR_INFO),
    _Kind("ac_lap", 212, AC_LAP),
    _Kind("tt_driver", 357, TT_DRIVER),
    _Kind("pcars1_telemetry", 1367, PCARS1_TELEMETRY),
    _Kind("pcars1_participant_strings", 1347, PCARS1_PARTICIPANT_STRINGS),
    _Kind("pcars1_participant_strings_additional", 1028, PCARS1_PARTICIPANT_STRINGS_ADDITIONAL),
    _Kind("pcars2_telemetry_538", 538, PCARS2_TELEMETRY_538),
    _Kind("pcars2_telemetry_555", 555, PCARS2_TELEMETRY_555),
    _Kind("pcars2_telemetry_556", 556, PCARS2_TELEMETRY_556),
    _Kind("pcars2_telemetry_559", 559, PCARS2_TELEMETRY_559),
    _Kind("pcars2_race_308", 308, PCARS2_RACE),
    _Kind("pcars2_participants_1040", 1040, PCARS2_PARTICIPANTS_1040),
    _Kind("pcars2_participants_1136", 1136, PCARS2_PARTICIPANTS_1136),
    _Kind("pcars2_timings_993", 993, PCARS2_TIMINGS_993),
    _Kind("pcars2_timings_1059", 1059, PCARS2_TIMINGS_1059),
    _Kind("pcars2_timings_1063", 1063, PCARS2_TIMINGS_1063),
    _Kind("pcars2_game_state_24", 24, PCARS2_GAME_STATE),
    _Kind("pcars2_time_stats_784", 784, PCARS2_TIME_STATS_784),
    _Kind("pcars2_time_stats_1040", 1040, PCARS2_TIME_STATS_1040),
    _Kind("pcars2_vehicle_names_1164", 1164, PCARS2_VEHICLE_NAMES),
    _Kind("pcars2_class_names_1452", 1452, PCARS2_CLASS_NAMES),
]

_KINDS = {k.name: k for k in _KIND_LIST}

#: packet kind name -> on-wire size in bytes
KINDS = {k.name: k.size for k in _KIND_LIST}

#: packet kind name -> the struct.Struct that decodes it (for inspection)
STRUCTS = {k.name: k.struct for k in _KIND_LIST}

#: packet kind name -> output field names, in wire order
FIELDS = {k.name: k.field_names for k in _KIND_LIST}


def decode(kind, payload):
    """Decode one ``kind`` payload into a ``{field name: value}`` dict.

    Raises ``KeyError`` for an unknown kind and ``ValueError`` when
    ``len(payload) != KINDS[kind]``.
    """
    k = _KINDS[kind]
    if len(payload) != k.size:
        raise ValueError("%s: expected %d bytes, got %d" % (kind, k.size, len(payload)))
    return k.decode(payload)


def classify_one(rules, payload: bytes) -> int:
    """Kind id of one datagram by a feed's rule rows (length, check offset, mask, value, kind), or
    -1: the classifier's rule written again, plainly, to check the compiled one against."""
    n = len(payload)
    for length, off, mask, value, kind in rules.tolist():
        if length not in (n, -1):  # -1: any length (a message of variable length)
            continue
        if off >= 0 and (off >= n or (payload[off] & mask) != value):
            continue
        return kind
    return -1
