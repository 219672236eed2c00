"""Eleven transformers architectures from tiny configs built in code (never a hub
download), for the zoo tests: ``ZOO_TRANSFORMERS[name] = (factory, inputs)``.

``factory()`` returns the model in eval mode with random weights (seeded);
``inputs()`` returns the keyword inputs of ``model(**inputs)``. Names listed in
``POSITIONAL`` also run as ``model(first_input)`` (a decoder-only LM, an encoder, an
image model). Configs are a layer or two of width 32 on 8-token sequences (16x16 images)
so that the zoo stays cheap in CI; the architectures, and so the operators, are the real
ones: BERT, DistilBERT, GPT-2, Llama, Mistral, Qwen2, T5 with decoder inputs, ViT, CLIP
(text and image), Whisper (input features and decoder inputs) and Mixtral with its
default experts implementation (``torch._grouped_mm`` in transformers 5).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

Inputs = dict[str, Tensor]
VOCAB = 96
SEQ = 8
_TOKENS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}


def _ids(batch: int = 1, seq: int = SEQ, seed: int = 0) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB, (batch, seq), generator=generator)


def _text() -> Inputs:
    return {"input_ids": _ids(), "attention_mask": torch.ones(1, SEQ, dtype=torch.long)}


def _pixels(size: int = 16) -> Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))


def _build(make: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def factory() -> nn.Module:
        torch.manual_seed(0)
        return make().eval()

    return factory


def bert() -> nn.Module:
    from transformers import BertConfig, BertForMaskedLM

    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        pad_token_id=0,
    )
    return BertForMaskedLM(config)


def distilbert() -> nn.Module:
    from transformers import DistilBertConfig, DistilBertModel

    config = DistilBertConfig(
        vocab_size=VOCAB,
        dim=32,
        n_layers=1,
        n_heads=2,
        hidden_dim=64,
        max_position_embeddings=32,
        pad_token_id=0,
    )
    return DistilBertModel(config)


def gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=1,
        n_head=2,
        n_positions=32,
        bos_token_id=1,
        eos_token_id=2,
    )
    return GPT2LMHeadModel(config)


def _decoder(config_name: str, model_name: str, **extra: object) -> nn.Module:
    import transformers

    config = getattr(transformers, config_name)(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        **_TOKENS,
        **extra,
    )
    model: nn.Module = getattr(transformers, model_name)(config)
    return model


def llama() -> nn.Module:
    return _decoder("LlamaConfig", "LlamaForCausalLM")


def mistral() -> nn.Module:
    return _decoder("MistralConfig", "MistralForCausalLM", sliding_window=4)


def qwen2() -> nn.Module:
    return _decoder("Qwen2Config", "Qwen2ForCausalLM")


def mixtral() -> nn.Module:
    # experts_implementation left at its default: grouped_mm in transformers 5
    return _decoder(
        "MixtralConfig", "MixtralForCausalLM", num_local_experts=4, num_experts_per_tok=2
    )


def t5() -> nn.Module:
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=16,
        d_ff=64,
        num_layers=1,
        num_decoder_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    return T5ForConditionalGeneration(config)


def vit() -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=16,
        patch_size=4,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=10,
    )
    return ViTForImageClassification(config)


def clip() -> nn.Module:
    from transformers import CLIPConfig, CLIPModel

    text = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=16,
        **_TOKENS,
    )
    vision = dict(
        image_size=16,
        patch_size=4,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
    )
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16))


def whisper() -> nn.Module:
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    config = WhisperConfig(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=8,
        max_source_positions=8,
        max_target_positions=16,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        suppress_tokens=[],
        begin_suppress_tokens=[],
    )
    return WhisperForConditionalGeneration(config)


def _seq2seq() -> Inputs:
    return {**_text(), "decoder_input_ids": _ids(seq=4, seed=2)}


def _whisper_inputs() -> Inputs:
    # 8 mel bins x 16 frames (2 x max_source_positions: the encoder's stride-2 conv)
    features = torch.randn(1, 8, 16, generator=torch.Generator().manual_seed(3))
    return {"input_features": features, "decoder_input_ids": _ids(seq=4, seed=2)}


def _clip_inputs() -> Inputs:
    return {**_text(), "pixel_values": _pixels()}


ZOO_TRANSFORMERS: dict[str, tuple[Callable[[], nn.Module], Callable[[], Inputs]]] = {
    "bert": (
        _build(bert),
        lambda: {**_text(), "token_type_ids": torch.zeros(1, SEQ, dtype=torch.long)},
    ),
    "distilbert": (_build(distilbert), _text),
    "gpt2": (_build(gpt2), _text),
    "llama": (_build(llama), _text),
    "mistral": (_build(mistral), _text),
    "qwen2": (_build(qwen2), _text),
    "mixtral": (_build(mixtral), _text),
    "t5": (_build(t5), _seq2seq),
    "vit": (_build(vit), lambda: {"pixel_values": _pixels()}),
    "clip": (_build(clip), _clip_inputs),
    "whisper": (_build(whisper), _whisper_inputs),
}

#: Models that also run as ``model(first_input)``: the first key of their inputs.
POSITIONAL: dict[str, str] = {
    "bert": "input_ids",
    "distilbert": "input_ids",
    "gpt2": "input_ids",
    "llama": "input_ids",
    "mistral": "input_ids",
    "qwen2": "input_ids",
    "mixtral": "input_ids",
    "vit": "pixel_values",
}


def mixtral_eager() -> nn.Module:
    """Mixtral with its experts as a loop of plain linears: FlopCounterMode's reference."""
    return _build(
        lambda: _decoder(
            "MixtralConfig",
            "MixtralForCausalLM",
            num_local_experts=4,
            num_experts_per_tok=2,
            experts_implementation="eager",
        )
    )()
