"""Getting the NOVIC authors' released checkpoints onto this machine (novic-fetch): the release
catalogue, a bounded resumable HTTP download with size and sha256 checks, a safe atomic zip unpack,
and the cache that ties them together with the hashes recorded on first download.

Imports the standard library, (optionally) tqdm and core.errors only: no torch, no ROS, nothing above it, so a
robot with the runtime install can fetch a checkpoint."""
