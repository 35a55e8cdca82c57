"""End-to-end tasks on real data, run by the `spectralmix` command line."""
