"""Leaf utilities that import nothing else of jembed: images, devices and processes, pictures, Beam, config
checks."""
