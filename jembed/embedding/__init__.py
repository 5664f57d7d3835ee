"""The shape side (paper §1-2): normalized meshes -> LFD-HoG descriptors -> distances -> Sammon points.

hog_input.py        the 20 LFD renders -> tight gray crops -> 120x120 HoG inputs
resize.py           MATLAB imresize (bicubic, antialiased, uint8 rounding per pass)
hog.py              the jitted HoG pyramid (Piotr's toolbox; skimage's dalal variant)
descriptors.py      the descriptors of a collection: batched, cached, resumable
distances.py        blockwise pairwise distances, sharded over devices
lbfgs.py            the jitted L-BFGS loop
sammon.py           Sammon MDS (exact and landmark)
sammon_kernel.py    its O(N² · dim) stress/gradient kernels and where they run
out_of_sample.py    placing new shapes into a finished embedding
shape_embedding.py  the stage: `embed_shapes(config, workdir)` -> shape_embedding.npz
shape_map.py        the 2-D map of the shape space
"""
