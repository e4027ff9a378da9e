"""Storage: raw feed files, the HDF5 store, recording lifecycle and recovery."""
