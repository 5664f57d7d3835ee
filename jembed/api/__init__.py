"""The public API other JAX code calls: embed images and shapes, retrieve, fuse, query, pose overlays, inversion,
placing new shapes."""
