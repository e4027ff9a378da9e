"""The packet ring: a single-producer / single-consumer lock-free ring of datagram slots.

Compiled in ``rt_ext.ring``; this module is the only door to it from ``rt``
(``tests/test_facade.py`` fails on any other import of it).

:class:`PacketRing` holds ``capacity`` slots (rounded up to a power of two) of ``slot_size``
bytes. Each slot carries a receive time (int64 ns; the receivers stamp ns since the Unix epoch),
the datagram's length as received (uint32 bytes; it may exceed ``slot_size``, which is all a slot
keeps) and the payload. The producer is the receive thread (:mod:`rt.recv`, without the GIL) or
``push_bytes``; the consumer takes zero-copy batches with ``peek`` and gives them back with
``release``. A full ring refuses the newest datagram and counts it, so at any quiet moment
``received == consumed + pending + dropped``.
"""

from rt_ext.ring import PacketRing

__all__ = ["PacketRing"]
