# Sourced by the other scripts: where heavy build products live, outside the clone,
# so a fresh clone reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/podlight/target}"
export PODLIGHT_CACHE="${PODLIGHT_CACHE:-$HOME/.cache/podlight}"
PODLIGHT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PODLIGHT_ROOT
