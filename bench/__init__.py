"""Benchmarks: `python -m bench [router|ingress]`. Figures are reported as ratios against a baseline
measured in the same run, because this machine is noisy. Not part of `make test`."""
