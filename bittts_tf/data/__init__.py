"""Datasets: corpus loaders and the feature cache (no TensorFlow).

  utterances, report = load_ljspeech("data/festival_corpus")   # or load_libritts
  cache = build_feature_cache(utterances, preset("tiny"), "data/festival_cache", report=report)
  train = [cache.load(e["utt_id"]) for e in split_entries(cache, "train")]

Batches for training come from bittts_tf.training.data, the one input pipeline.
"""

from bittts_tf.data.cache import FeatureCache, build_feature_cache, split_entries, split_of
from bittts_tf.data.corpus import Utterance
from bittts_tf.data.libritts import load_libritts
from bittts_tf.data.ljspeech import CorpusError, load_ljspeech
from bittts_tf.data.report import SkipReport

__all__ = ["FeatureCache", "build_feature_cache", "split_entries", "split_of", "Utterance",
           "load_libritts", "CorpusError", "load_ljspeech", "SkipReport"]
