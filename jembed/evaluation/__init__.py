"""The paper's evaluation (§4): test images, the methods compared on them, the protocols, the report.

image_sets.py  synthetic clean/cluttered test images of new views; real-photo sets read through `photo_sets`
photo_sets.py  real photos with their ground-truth shapes (IKEA, a folder with labels.txt)
baselines.py   HoG-NN and raw-pixel nearest neighbours against the shapes' LFD views
metrics.py     ranks, top-K, first/last ranks, the paper's precision-recall
evaluate.py    every method x every protocol x every set -> results.json, curves.npz
report.py      results.md, the curves and the retrieval gallery
"""
