"""``hub:<owner>/<name>`` checkpoints: download ``<name>.pth`` from the Hugging Face Hub."""
from __future__ import annotations

from pathlib import Path

from retcore.errors import CheckpointError

__all__ = ["HUB_PREFIX", "hub_download"]


HUB_PREFIX = "hub:"


def hub_download(spec: str) -> Path:
    """Download ``<name>.pth`` of ``hub:<owner>/<name>`` from the Hugging Face Hub.

    Returns the local file path. Any network, authentication or licence
    failure raises ``CheckpointError`` telling the user how to fetch the file
    by hand and pass its local path instead.
    """
    repo_id = spec[len(HUB_PREFIX):].strip().strip("/") if spec.startswith(HUB_PREFIX) else spec.strip("/")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise CheckpointError(f"bad hub checkpoint {spec!r}: write hub:<owner>/<name>, e.g. "
                              "hub:YukunZhou/RETFound_mae_natureCFP")
    filename = f"{repo_id.split('/')[-1]}.pth"
    manual = (
        f"download {filename} from https://huggingface.co/{repo_id} (gated: log in, accept the licence, "
        "and use an access token via `hf auth login` or HF_TOKEN) and pass its local path"
    )
    try:
        import huggingface_hub
    except ImportError:
        raise CheckpointError(f"huggingface_hub is not installed, so {spec} cannot be fetched: {manual}") from None
    try:
        return Path(huggingface_hub.hf_hub_download(repo_id=repo_id, filename=filename))
    except Exception as exc:  # noqa: BLE001 - network, auth, gating, missing repo...
        raise CheckpointError(
            f"could not download {filename} from {repo_id} ({type(exc).__name__}): {manual}"
        ) from None
