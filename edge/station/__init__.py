"""The station daemon: configuration, input (serial, replay), ring buffers, event pipeline,
event magnitude, MiniSEED archive and systemd notification."""
