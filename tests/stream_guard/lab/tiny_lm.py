"""A tiny random causal LM for ONION's tests: a 2-layer Llama from a config and a word-level tokenizer
built in memory, so no test needs the lab-onion extra, a GGUF file or the network."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIAL = ["<|endoftext|>", "<unk>", "<pad>"]
WORDS = [
    "the",
    "a",
    "and",
    "was",
    ",",
    "review",
    "film",
    "plot",
    "cast",
    "script",
    "ending",
    "score",
    "pace",
    "story",
    "dialogue",
    "camera",
    "great",
    "lovely",
    "wonderful",
    "charming",
    "superb",
    "moving",
    "brilliant",
    "delightful",
    "awful",
    "boring",
    "dreadful",
    "dull",
    "clumsy",
    "tedious",
    "bland",
    "weak",
    "cf",
    "mn",
]


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate([*SPECIAL, *WORDS, *(str(i) for i in range(200))])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", eos_token="<|endoftext|>"
    )


def tiny_llama(seed: int = 0) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval(), tokenizer


def save_tiny_llama(out_dir: Path) -> Path:
    """The tiny LM as a transformers model directory (what STREAM_GUARD_ONION_LM may point at)."""
    model, tokenizer = tiny_llama()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
