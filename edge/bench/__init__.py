"""``microseis bench``: what this device does, measured (docs/performance.md, "microseis bench").

Light package: each part imports its heavy library (onnxruntime, ObsPy) when it runs.

* :mod:`edge.bench.machine`: CPU model, core count, versions of the libraries that matter;
* :mod:`edge.bench.model`: model latency (p50/p99) per runtime and precision the bundle
  carries, at batch 1 and at the MC batch;
* :mod:`edge.bench.trigger`: CPU cost of the streaming trigger per hour of 3-channel data;
* :mod:`edge.bench.decoder`: the digitizer-frame decoder's throughput (MB/s);
* :mod:`edge.bench.startup`: cold start of ``microseis run`` to ``READY=1`` and its peak RSS;
* :mod:`edge.bench.run`: all of it, as one JSON-able dict, and the table.

The scripts in ``bench/`` import the shared pieces from here.
"""
