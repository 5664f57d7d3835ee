"""The image side's data: synthetic images (views, lights, truncation, backgrounds), the TFDS dataset, the grain stream.

viewpoints.py    Render-for-CNN view sampler per category (paper histograms or a user's view files)
synthesis.py     one image: lights, albedo, jittered crop, alpha compositing, stretch
backgrounds.py   photo crops, flat gray, built-in procedural clutter; bad files skipped with a report
render_cache.py  rendering shapes in worker processes into a resumable per-shape cache
splits.py        train / validation / test by image or by shape
naming.py        where the dataset of a config lives (a hash of the settings that change the images)
tfds_builder.py  the TFDS GeneratorBasedBuilder (ArrayRecord, PNG bytes, no TensorFlow)
build.py         `build_dataset(config, workdir)`: atomic, resumable, sharded over hosts
sample_sheet.py  dataset_samples.png
pipeline.py      grain over tfds.data_source -> global device batches with the embedding points joined
"""
