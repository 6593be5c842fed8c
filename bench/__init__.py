"""Benchmarks of Uploader against its peers and the machine's limits (`make bench`).

Not tests: nothing here asserts a time. Run `python -m bench --help`.
"""
