"""A randomly initialised Stable Diffusion pipeline saved as a model folder, for tests and the bench.

Real weights cannot be downloaded here, so tests and the thumbnail bench build a pipeline folder
with the same components as a real checkpoint (CLIP tokenizer and text encoder, UNet, VAE,
scheduler) and load it back through the real `from_pretrained` code. `--size real` builds Stable
Diffusion 1.5's shapes (a 860 M-parameter UNet, CLIP ViT-L/14's text encoder, the 4-channel VAE).

    python bench/random_stable_diffusion.py FOLDER [--size tiny|real]
"""

from __future__ import annotations

from pathlib import Path


def byte_characters() -> list[str]:
    """The 256 printable characters byte-level BPE uses for the bytes 0..255 (GPT-2's table):
    printable Latin-1 bytes stand for themselves, the others are moved to U+0100 and up."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1), *range(ord("\u00ae"), ord("\u00ff") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def byte_level_tokenizer():
    """A CLIP tokenizer whose vocabulary is every byte character, with and without `</w>`.

    No merges: every word is spelt out byte by byte, which is all a random text encoder needs.
    Without `model_max_length` the tokenizer fails ("int too big to convert").
    """
    from transformers import CLIPTokenizer

    characters = byte_characters()
    vocab = {token: index for index, token in enumerate(characters + [c + "</w>" for c in characters])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def flag_everything_checker():
    """A tiny real StableDiffusionSafetyChecker whose concept thresholds flag every image: the
    pipeline's own NSFW path, end to end, without its real weights."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    checker = StableDiffusionSafetyChecker(CLIPConfig(text_config=small, projection_dim=16,
                                                      vision_config=dict(small, image_size=32, patch_size=8)))
    with torch.no_grad():  # an image is flagged when cosine - weight > 0; cosines are >= -1
        checker.concept_embeds_weights.fill_(-2.0)
    extractor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return checker, extractor


def save_random_stable_diffusion(folder: Path, size: str = "tiny", seed: int = 0, flag_everything: bool = False) -> Path:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = byte_level_tokenizer()
    vocab_size = len(tokenizer.get_vocab())
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    if size == "tiny":
        text = CLIPTextConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, max_position_embeddings=77, **special)
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
            norm_num_groups=32)
        vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=32, sample_size=32)
    elif size == "real":  # Stable Diffusion 1.5's shapes
        text = CLIPTextConfig(vocab_size=vocab_size, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", **special)
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8,
                                    block_out_channels=(320, 640, 1280, 1280), layers_per_block=2)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=4, sample_size=512,
                            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    else:
        raise ValueError(f"size must be 'tiny' or 'real', got {size!r}")
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    checker, extractor = flag_everything_checker() if flag_everything else (None, None)
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=CLIPTextModel(text), tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=checker, feature_extractor=extractor,
                                       requires_safety_checker=flag_everything)
    pipeline.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    from random_model_cli import run

    run(save_random_stable_diffusion, __doc__)
