"""GPU fast paths (static-cache CUDA-graph decoding, chunked loss). Each runs on the CPU too,
without the graph, so that the same code is tested in CI."""
