#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install the whole stack, idempotently.
#
#   bash tools/setup_env.sh            # what `make test` and `make demo` run first
#   VENV=/path/to/venv bash tools/setup_env.sh
#
# Steps: torch -> build tools -> mmcv 2.1.0 with compiled ops (built once from the PyPI sdist, the wheel kept in
# $CCFORMER_WHEEL_CACHE) -> mmengine / mmseg / mmdet / runtime deps / onnx + onnxruntime (requirements/deploy.txt)
# -> this project (editable) -> a self-check
# that fails loudly if mmcv._ext is missing or a MultiScaleDeformableAttention forward fails.
#
# Why mmcv is built here: no mmcv wheel exists for current torch. mmcv 2.1.0's setup.py asks for C++14/17, but
# torch >= 2.14's headers need C++20, so the sdist's -std flags are raised to c++20 before building.
# On a machine with a visible GPU, nvcc and a CUDA torch, the CUDA ops are built too (set TORCH_CUDA_ARCH_LIST
# to your GPUs, e.g. "8.0;9.0", to save time); FORCE_CUDA=1 with TORCH_CUDA_ARCH_LIST builds them without a GPU.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
CACHE=${CCFORMER_WHEEL_CACHE:-$HOME/.cache/ccformer/wheels}
MMCV_VERSION=2.1.0
log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# The stamp names everything that decides what is installed; a change to any of it re-runs the install.
stamp_key=$(cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" "$0" | sha256sum | cut -c1-16)
STAMP="$VENV/.ccformer-setup-$stamp_key"

if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

if [ -f "$STAMP" ] && "$PY" "$ROOT/tools/misc/check_env.py" --quiet; then
    log "environment is up to date ($VENV)"
    exit 0
fi

log "installing torch"
"${PIP[@]}" install -q -r "$ROOT/requirements/torch.txt"
"${PIP[@]}" install -q -r "$ROOT/requirements/build.txt"

have_mmcv_ops() {
    "$PY" - <<'EOF' 2>/dev/null
import importlib.metadata as md, sys
import torch  # noqa: F401  (mmcv._ext links against it)
assert md.version('mmcv') == '2.1.0'
import mmcv._ext  # noqa: F401
sys.exit(0)
EOF
}

if have_mmcv_ops; then
    log "mmcv $MMCV_VERSION with compiled ops already installed"
else
    torch_tag=$("$PY" -c "import torch; print(torch.__version__.replace('+', '_'))")
    # CUDA ops: when a GPU is visible (with nvcc and a CUDA torch), or when FORCE_CUDA=1 is set by hand (then
    # TORCH_CUDA_ARCH_LIST must name the target GPUs, as there is no GPU to ask). nvcc alone is not enough: a
    # CPU-only machine with a CUDA toolkit would spend an hour compiling kernels it cannot run.
    cuda_ops=0
    if [ "${FORCE_CUDA:-0}" = 1 ]; then
        [ -n "${TORCH_CUDA_ARCH_LIST:-}" ] || { echo "FORCE_CUDA=1 needs TORCH_CUDA_ARCH_LIST, e.g. '8.0;9.0'" >&2; exit 1; }
        cuda_ops=1
    elif command -v nvcc >/dev/null 2>&1 && "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        cuda_ops=1
    fi
    wheel_dir="$CACHE/mmcv-$MMCV_VERSION-torch$torch_tag-cuda$cuda_ops-$("$PY" -c 'import sys; print("py%d%d" % sys.version_info[:2])')"
    if ! ls "$wheel_dir"/mmcv-*.whl >/dev/null 2>&1; then
        log "building mmcv $MMCV_VERSION with ops from source (about 13 min on 2 cores; done once, cached in $wheel_dir)"
        build=$(mktemp -d)
        trap 'rm -rf "$build"' EXIT
        "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$build"
        tar -xzf "$build/mmcv-$MMCV_VERSION.tar.gz" -C "$build"
        src="$build/mmcv-$MMCV_VERSION"
        sed -i 's/-std=c++14/-std=c++20/g; s/-std=c++17/-std=c++20/g' "$src/setup.py"
        export MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)}
        if [ "$cuda_ops" = 1 ]; then export FORCE_CUDA=1; else unset FORCE_CUDA; fi
        "${PIP[@]}" wheel --no-build-isolation --no-deps "$src" -w "$build/wheel" > "$build/build.log" 2>&1 || {
            tail -n 40 "$build/build.log"; echo "mmcv build failed (full log above)" >&2; exit 1; }
        mkdir -p "$wheel_dir"
        cp "$build"/wheel/mmcv-*.whl "$wheel_dir/"
    else
        log "reusing the mmcv wheel built earlier: $(ls "$wheel_dir"/mmcv-*.whl)"
    fi
    "${PIP[@]}" install -q --no-deps --force-reinstall "$wheel_dir"/mmcv-*.whl
fi

log "installing mmengine, mmsegmentation, mmdet and the runtime/deploy/test requirements"
"${PIP[@]}" install -q -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/deploy.txt" \
    -r "$ROOT/requirements/tests.txt" "mmengine==0.11.0rc3"
# --no-deps: their metadata would make pip try to resolve (and rebuild) mmcv.
"${PIP[@]}" install -q --no-deps "mmsegmentation==1.2.2" "mmdet==3.3.0"
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"

log "self-check"
"$PY" "$ROOT/tools/misc/check_env.py"
rm -f "$VENV"/.ccformer-setup-*
touch "$STAMP"
log "done: activate with 'source $VENV/bin/activate'"
