"""pytest-benchmark suites, one file per stage; each benchmark has a named peer in its group."""
