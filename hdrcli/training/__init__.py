"""Training: losses (this version); data, camera simulation and the loop come with `hdr train`."""
