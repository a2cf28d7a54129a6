# Sourced by scripts/test-all.sh: makes sure qemu's x86-64 user-mode emulator is installed
# (Debian's qemu-user; apt-get as root, or through sudo) and sets `xq_qemu` to its path.
xq_qemu=$(command -v qemu-x86_64 || true)
if [ -z "$xq_qemu" ]; then
  echo "== installing qemu-user (qemu-x86_64) for the emulated AVX2-only pass"
  xq_sudo=""
  [ "$(id -u)" = 0 ] || xq_sudo=sudo
  $xq_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $xq_sudo apt-get install -y -qq qemu-user >/dev/null
  xq_qemu=$(command -v qemu-x86_64)
fi
