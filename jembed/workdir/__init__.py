"""The workdir layer: where each artifact lives (`paths`), atomic files, provenance, and the records stages hand
each other."""
