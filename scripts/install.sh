# Sourced by the project's scripts (rustc-wrapper, kafka.sh, test.sh): installs missing system packages
# where that is possible without asking (root, or password-less sudo, and apt-get), once per machine.

# apt_install PKG...: returns 1 when nothing can be installed here (the caller then names what to install).
apt_install() {
  local sudo="" log
  if [ "$(id -u)" != 0 ]; then
    sudo -n true 2>/dev/null || return 1
    sudo="sudo -n"
  fi
  command -v apt-get >/dev/null || return 1
  echo "kstreams: installing $* with apt-get (once)" >&2
  log=$(mktemp)
  # Cargo compiles crates in parallel and tests may start scripts side by side: one install at a time.
  if (
    command -v flock >/dev/null && flock 9
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
  ) 9>/tmp/kstreams-apt.lock >"$log" 2>&1; then
    rm -f "$log"
  else
    tail -n 20 "$log" >&2
    rm -f "$log"
    return 1
  fi
}
