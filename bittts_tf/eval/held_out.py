"""Held-out losses of a checkpoint: the figures training logs in held_out.jsonl,
computed again for any checkpoint (an averaged one included), on the
utterances its run held out."""

from __future__ import annotations

from bittts_tf.training import callbacks, checkpoints, run


class HeldOutError(ValueError):
    """A corpus that does not hold out the utterances a run held out."""


class HeldOutEvaluator:
    """Builds the models once, then evaluates checkpoints of one run.

    The held-out utterances are the ones the checkpoint's manifest names; a
    corpus that no longer yields them is refused, since the figures would not
    compare with the run's curves."""

    def __init__(self, checkpoint: str, corpus: str):
        manifest = checkpoints.read_manifest(checkpoint)
        self.model_config = checkpoints.model_config(checkpoint, manifest)
        self.stored_model_config = manifest["model_config"]
        self.training_config = checkpoints.training_config(checkpoint, manifest)
        held_out_ids = manifest["held_out_ids"]
        data = run.load_corpus(corpus, self.model_config.audio, len(held_out_ids))
        if data.held_out_ids != held_out_ids:
            raise HeldOutError(f"corpus {corpus} does not hold out the utterances {checkpoint} "
                             f"was evaluated on (first expected {held_out_ids[:3]}, "
                             f"found {data.held_out_ids[:3]})")
        self.trainer = run.build_trainer(self.model_config, self.training_config)
        self.batches = run.held_out_batches(data.held_out, self.training_config,
                                            self.model_config.audio.hop_length)

    def evaluate(self, checkpoint: str) -> dict[str, float]:
        manifest = checkpoints.read_manifest(checkpoint)
        if manifest["model_config"] != self.stored_model_config:
            raise checkpoints.CheckpointError(f"{checkpoint} holds another model config than "
                                              "the checkpoint this evaluator was built for")
        checkpoints.restore(checkpoint, self.trainer.models)
        return callbacks.evaluate_held_out(self.trainer, self.batches)
