"""The exceptions of rusty-telemetry, and the policy behind them.

* Malformed datagrams are never exceptional: they are counted per feed and kept out of decoding
  (raw files still record them). :class:`DecodeError` is only raised by explicit one-off decoding
  calls, never on the ingest path.
* Disk errors (:class:`StoreError`) stop the affected recording cleanly, with the reason in its
  manifest; feeds, the API and everything already written carry on.
* Configuration errors (:class:`ConfigError`) stop start-up with one clear line naming the
  setting, before any socket is bound.
* Requests the state cannot serve (:class:`NotFound`, :class:`Conflict`) say what and why, and
  nothing about HTTP: the API maps every one of them, once, in ``rt.api.errors``.
"""


class RtError(Exception):
    """Base class of every error raised by rusty-telemetry."""


class ConfigError(RtError):
    """A configuration value is missing, malformed or out of range."""


class DecodeError(RtError):
    """A datagram does not match the packet kind it was decoded as."""


class StoreError(RtError):
    """A recording could not be written or read."""


class NotFound(RtError):
    """Nothing of ``kind`` (recording, session, run, feed) is named ``ident``."""

    def __init__(self, kind: str, ident: str, message: str | None = None) -> None:
        super().__init__(message or f"no {kind} {ident}")
        self.kind = kind
        self.ident = ident


class Conflict(RtError):
    """The request contradicts the present state (a recording already active, a session already
    completed …); ``code`` names the case for clients, stable across versions."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
