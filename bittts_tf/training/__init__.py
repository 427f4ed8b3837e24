"""Training: losses, the Keras-fit JETS trainer, checkpoints, data batches."""
