"""Datasets: corpus loaders, feature cache, tf.data pipeline."""
