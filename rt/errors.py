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
* Analyses that cannot be made from the data raise ``ValueError`` (the sessions turn it into a
  :class:`Conflict`); :class:`MissingChannels` is the one kind a client can act on by name: the
  feed lacks channels the analysis needs (ACC's broadcasting has no rpm or pedals).
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


class Invalid(RtError, ValueError):
    """A value a request gave is malformed or outside its list (a lap list like ``3,5-x``);
    ``code`` names the case for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class MissingChannels(RtError, ValueError):
    """An analysis needs ``channels`` that no run of it carries (every value unknown), because the
    runs' ``feeds`` do not send them; a ValueError like every other analysis failure."""

    def __init__(self, analysis: str, channels: list[str], feeds: list[str]) -> None:
        by = f"the {', '.join(feeds)} feed{'s' if len(feeds) > 1 else ''} " if feeds else "the runs "
        super().__init__(f"{analysis} needs the {' and '.join(channels)} channel{'s' if len(channels) > 1 else ''}, "
                         f"which {by}do{'es' if len(feeds) == 1 else ''} not carry")
        self.analysis = analysis
        self.channels = list(channels)
        self.feeds = list(feeds)
