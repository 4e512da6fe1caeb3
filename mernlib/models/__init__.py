"""Neural models of the kit.

* :mod:`mernlib.models.crf` -- a linear-chain CRF output layer (forward algorithm, Viterbi).
* :mod:`mernlib.models.mtl_feedback` -- the multi-task MER + MEN tagger with explicit feedback
  (Zhao et al., AAAI 2019) and its single-task Bi-LSTM(-CNNs)(-CRF) baselines.
* :mod:`mernlib.models.e2emern` -- E2EMERN (Zhou et al., ACL 2021).
* :mod:`mernlib.models.hst` -- hierarchical shared transfer across IOB NER datasets (Chai et al., BMC
  Bioinformatics 2022): :class:`HSTConfig`, :class:`HSTTagger`.
"""

from mernlib.models.crf import CRF
from mernlib.models.hst import HSTConfig, HSTTagger
from mernlib.models.mtl_feedback import (
    VARIANTS,
    BiLSTMEncoder,
    CharCNN,
    Feedback,
    MTLConfig,
    MultiTaskTagger,
    TaskHead,
    WordRepresentation,
    get_default_config,
)

__all__ = [
    "CRF",
    "VARIANTS",
    "BiLSTMEncoder",
    "CharCNN",
    "Feedback",
    "HSTConfig",
    "HSTTagger",
    "MTLConfig",
    "MultiTaskTagger",
    "TaskHead",
    "WordRepresentation",
    "get_default_config",
]
