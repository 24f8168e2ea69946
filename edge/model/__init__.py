"""The model on the station: signed bundles (keys, manifest, container, verification,
installation), the ONNX/LiteRT runtimes, MC-dropout inference and batch prediction."""
