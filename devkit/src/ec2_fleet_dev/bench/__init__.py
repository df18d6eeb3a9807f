"""The benchmarks (bench/README.md says what each measures); `bench/run.py` runs them and writes bench/results/."""
