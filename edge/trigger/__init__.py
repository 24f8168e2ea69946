"""Streaming event trigger: stateful band-pass, recursive/classic STA/LTA (ObsPy's C routines),
on/off thresholds and coincidence, carried across chunks and gaps."""
