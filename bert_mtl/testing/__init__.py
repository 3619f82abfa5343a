"""Independent references shared by the tests and the benchmarks (never used
by the library itself): reference_tokenization is google-research/bert's
tokenization.py logic in plain Python, the oracle the native tokenizer is
compared with and the baseline it is timed against; reference_pretraining
is create_pretraining_data.py's algorithm on token strings, which the
native instances must equal draw for draw; reference_records the windows
of a labelled unit sequence."""
