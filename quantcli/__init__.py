"""quantcli: Hugging Face checkpoint to GGUF in one step."""

__version__ = "0.1.0"
