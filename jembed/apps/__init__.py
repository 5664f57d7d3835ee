"""Applications on top of the API: the stages chained, the demo, the inversion gallery, the web page, config
validation."""
