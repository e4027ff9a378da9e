"""Merging the frames of several feeds onto one time line, with duplicates removed.

Compiled in ``rt_ext.merge``; this module is the only door to it from ``rt``
(``tests/test_facade.py`` fails on any other import of it).

:func:`merge_timelines` takes each feed's frame times (1-D int64 ns, sorted ascending; the first
feed is the primary, at most 127 feeds) and a tolerance (int ns). Every primary frame is kept; a
later feed adds only frames more than the tolerance away from every frame kept before it, so the
primary wins ties and an earlier feed beats a later one. Returns ``(t_ns, feed, index)``: the
kept times ascending (int64 ns), each one's feed position (int8) and its frame index in that feed
(int64). One linear walk per feed: O(feeds × frames).
"""

from rt_ext.merge import merge_timelines

__all__ = ["merge_timelines"]
