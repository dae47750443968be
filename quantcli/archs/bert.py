"""BertModel (sentence embedding models) -> ``bert`` (llama.cpp conversion/bert.py)."""

from __future__ import annotations

import gguf

from .base import Adapter
from .registry import register


@register
class Bert(Adapter):
    architectures = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification")
    arch = gguf.MODEL_ARCH.BERT
    vocab = "set_vocab_bert"

    def __init__(self, folder, hparams, vocab_pre=None):
        super().__init__(folder, hparams, vocab_pre)
        labels = hparams.get("id2label")
        if labels and len(labels) == 2 and _label(labels, 0) == "LABEL_0":
            labels = None  # the dummy labels AutoConfig adds
        self.cls_out_labels = labels

    def rename(self, name):
        if name.startswith("bert."):
            name = name[5:]
        if name.endswith(".gamma"):
            name = name[:-6] + ".weight"
        if name.endswith(".beta"):
            name = name[:-5] + ".bias"
        if name in ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"):
            return None
        if name.startswith(("cls.predictions", "cls.seq_relationship")):
            return None
        if self.cls_out_labels and name in ("classifier.weight", "classifier.bias"):
            name = name.replace("classifier.", "classifier.out_proj.")
        return super().rename(name)

    def set_gguf_parameters(self, kv, file_type):
        super().set_gguf_parameters(kv, file_type)
        kv.add_causal_attention(False)
        self.set_pooling_type(kv)
        if self.cls_out_labels:
            items = sorted((int(k), v) for k, v in self.cls_out_labels.items())
            kv.add_classifier_output_labels([v for _, v in items])


def _label(labels: dict, i: int):
    return labels.get(i, labels.get(str(i)))
