# Sourced by the scripts in scripts/: makes sure the project's Python virtualenv (.venv)
# exists with requirements-test.txt installed (cmake, numpy, onnx, onnxruntime, ...), and
# puts it first on PATH. Reinstalls only when requirements-test.txt changes.
xq_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
xq_venv="$xq_root/.venv"
xq_stamp="$xq_venv/.requirements.sha256"
xq_want=$(sha256sum "$xq_root/requirements-test.txt" | cut -d' ' -f1)
if [ ! -x "$xq_venv/bin/python" ] || [ "$(cat "$xq_stamp" 2>/dev/null)" != "$xq_want" ]; then
  echo "== setting up $xq_venv (requirements-test.txt)"
  python3 -m venv "$xq_venv"
  "$xq_venv/bin/pip" install -q --disable-pip-version-check --upgrade pip
  "$xq_venv/bin/pip" install -q --disable-pip-version-check -r "$xq_root/requirements-test.txt"
  echo "$xq_want" > "$xq_stamp"
fi
export PATH="$xq_venv/bin:$PATH"
export XQ_PYTHON="$xq_venv/bin/python"
