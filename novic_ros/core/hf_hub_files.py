"""The files an open_clip `hf-hub:ORG/NAME` model needs, found in the Hugging Face cache (or
downloaded when online) before open_clip is asked to build it, so that a missing file is an error
that names the file and where to put it. (open_clip itself builds the model with random weights
and only logs a warning when the weights file cannot be had.)

Honours the Hugging Face variables as open_clip and transformers do: HF_HUB_OFFLINE (or
TRANSFORMERS_OFFLINE) for no network, HF_HUB_CACHE / HF_HOME for where the cache is."""
from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelLoadError

CONFIG = 'open_clip_config.json'
WEIGHTS = ('open_clip_model.safetensors', 'open_clip_pytorch_model.bin')      # open_clip's order
TOKENIZER_FILES = ('tokenizer.json', 'tokenizer_config.json')    # what transformers' AutoTokenizer needs at least


def _hub():
    try:
        import huggingface_hub     # comes with open_clip and timm; absent from a torch-free runtime
        from huggingface_hub import constants
    except ImportError as e:
        raise ModelLoadError("hf-hub: models need the huggingface_hub package (installed with open_clip)") from e
    return huggingface_hub, constants


def cache_root() -> Path:
    return Path(_hub()[1].HF_HUB_CACHE)


def offline() -> bool:
    return bool(_hub()[1].HF_HUB_OFFLINE)


def where_to_put(repo_id: str, files: list[str]) -> str:
    folder = cache_root() / ('models--' + repo_id.replace('/', '--'))
    return (f"put {', '.join(files)} of the Hugging Face repository {repo_id} in {folder}/snapshots/REV/ and the "
            f"name REV in {folder}/refs/main (copy that folder from a machine where the model loaded, or run "
            f"`hf download {repo_id}` where the hub is reachable and copy the cache; HF_HUB_CACHE moves the cache)")


def hub_file(repo_id: str, filename: str) -> Path | None:
    """The cached (or, online, downloaded) file; None where the repository has no such file or it
    cannot be had. Only a file that really is missing returns None: other errors say why."""
    hub, _ = _hub()
    try:
        return Path(hub.hf_hub_download(repo_id=repo_id, filename=filename, library_name='open_clip'))
    except Exception:  # noqa: BLE001 - the hub raises many kinds (offline, not found, HTTP, connection)
        return None


def _state() -> str:
    return ('HF_HUB_OFFLINE is set' if offline() else
            'the hub could not be reached or has no such file') + f"; cache {cache_root()}"


def require_model_files(repo_id: str, weights: bool = True) -> dict:
    """Check that hf-hub:`repo_id` can be built: its open_clip config, its weights (unless `weights` is
    False: random initialisation) and, for a Hugging Face tokenizer, the tokenizer's files. Returns the
    open_clip config. ModelLoadError names each missing file and where it goes."""
    cfg_path = hub_file(repo_id, CONFIG)
    if cfg_path is None:
        raise ModelLoadError(f"CLIP hf-hub:{repo_id}: {CONFIG} is not available ({_state()}); "
                             + where_to_put(repo_id, [CONFIG, WEIGHTS[0] + ' (or ' + WEIGHTS[1] + ')']))
    try:
        config = json.loads(cfg_path.read_text())
        config['model_cfg']
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(f"CLIP hf-hub:{repo_id}: {cfg_path} is not an open_clip config ({e})") from e
    if weights and not any(hub_file(repo_id, w) for w in WEIGHTS):
        raise ModelLoadError(f"CLIP hf-hub:{repo_id}: no weights ({' or '.join(WEIGHTS)}) are available ({_state()}); "
                             + where_to_put(repo_id, [WEIGHTS[0] + ' (or ' + WEIGHTS[1] + ')'])
                             + "; or set pretrained to a local weights file or folder")
    tok_repo = config['model_cfg'].get('text_cfg', {}).get('hf_tokenizer_name')
    if tok_repo:
        require_tokenizer_files(tok_repo, f"CLIP hf-hub:{repo_id}")
    return config


def require_tokenizer_files(repo_id: str, who: str) -> None:
    """A Hugging Face tokenizer's files (tokenizer.json or a SentencePiece model, its config)."""
    missing = [f for f in TOKENIZER_FILES if hub_file(repo_id, f) is None]
    if 'tokenizer.json' in missing and hub_file(repo_id, 'spiece.model') is not None:
        missing.remove('tokenizer.json')          # a slow SentencePiece tokenizer transformers converts
    if missing:
        raise ModelLoadError(f"{who}: its tokenizer {repo_id} lacks {', '.join(missing)} ({_state()}); "
                             + where_to_put(repo_id, missing))
