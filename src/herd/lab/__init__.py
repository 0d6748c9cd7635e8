"""A local fleet of SSH hosts on loopback addresses, for trying herd, tests and benchmarks."""
