# The datagram classifier's rule, written once for every extension that classifies (decode's
# batch classifier, the receive loop's shedding of garbage under a flood).
from libc.stdint cimport int64_t, uint8_t


cdef inline int match_rules(const int64_t *rules, Py_ssize_t nrules, const uint8_t *payload,
                            int64_t length) noexcept nogil:
    """Kind id of a datagram of ``length`` bytes at ``payload``: the first rule that matches; -1
    (malformed) if none does. ``rules`` rows: (length, check_offset, mask, value, kind_id); a
    check_offset of -1 means the length alone decides; a length of -1 matches any length (messages
    of variable length, checked by their parse)."""
    cdef Py_ssize_t r
    cdef const int64_t *rule
    cdef int64_t off
    for r in range(nrules):
        rule = rules + 5 * r
        if rule[0] >= 0 and rule[0] != length:
            continue
        off = rule[1]
        if off >= 0 and (off >= length or (payload[off] & rule[2]) != rule[3]):
            continue
        return <int> rule[4]
    return -1
