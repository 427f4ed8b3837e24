"""Datasets: corpus loaders, feature cache, tf.data pipelines.

  utterances, report = load_ljspeech("data/festival_corpus")   # or load_libritts
  cache = build_feature_cache(utterances, preset("tiny"), "data/festival_cache", report=report)
  batches = pipeline.acoustic_dataset(cache, "train", batch_size=16)

TensorFlow is imported only by the pipeline functions.
"""

from bittts_tf.data.cache import FeatureCache, build_feature_cache
from bittts_tf.data.corpus import Utterance
from bittts_tf.data.libritts import load_libritts
from bittts_tf.data.ljspeech import CorpusError, load_ljspeech
from bittts_tf.data.report import SkipReport

__all__ = ["FeatureCache", "build_feature_cache", "Utterance", "load_libritts", "CorpusError",
           "load_ljspeech", "SkipReport"]
