"""Client bitmaps in, masks out: inline bytes, POSIX shared memory, overlays."""
