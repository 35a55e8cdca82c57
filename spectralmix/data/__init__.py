"""Datasets: readers, vocabularies and length-bucketed batching, free of any framework."""
