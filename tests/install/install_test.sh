#!/usr/bin/env bash
# Installs the build into a temporary prefix, builds examples/simple.c and simple.cpp against the
# installed package with find_package(edgellm) and with pkg-config, runs them on stories260K and
# compares their greedy text with `edgellm run`'s. With --deb: makes the .deb with CPack,
# unpacks it with dpkg -x into an empty folder and runs the edgellm CLI and an example from there.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR MODEL [--deb]
set -euo pipefail
build="$1"; src="$2"; model="$3"; mode="${4:-}"
if [ ! -f "$model" ]; then echo "model missing: $model (../shared not present)"; exit 77; fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
prompt="Once upon a time"
n=24

if [ "$mode" = "--deb" ]; then
  (cd "$tmp" && cpack --config "$build/CPackConfig.cmake" -G DEB -B "$tmp/pkg" >"$tmp/cpack.log" 2>&1) ||
    { cat "$tmp/cpack.log"; exit 1; }
  deb="$(ls "$tmp"/pkg/*.deb)"
  echo "package: $(basename "$deb")"
  dpkg-deb -I "$deb" | sed -n '/Package:/,/Description:/p'
  dpkg -x "$deb" "$tmp/root"
  (cd "$tmp/root" && find . -type f -o -type l | sort | grep -v '/workers/')
  "$tmp/root/usr/bin/edgellm" --version
  grep -qx 'prefix=/usr' "$tmp/root/usr/lib/pkgconfig/edgellm.pc" || { echo "edgellm.pc in the .deb:"; cat "$tmp/root/usr/lib/pkgconfig/edgellm.pc"; exit 1; }
  dpkg-deb -f "$deb" Depends
  # The package's pkg-config file names /usr; build against the unpacked copy with its -I/-L.
  cc "$tmp/root/usr/share/doc/edgellm/examples/simple.c" -I"$tmp/root/usr/include" -L"$tmp/root/usr/lib" \
    -ledgellm -Wl,-rpath,"$tmp/root/usr/lib" -o "$tmp/simple_deb"
  want="$("$tmp/root/usr/bin/edgellm" run -m "$model" -p "$prompt" -n $n --temp 0 2>/dev/null)"
  got="$("$tmp/simple_deb" "$model" "$prompt" $n 2>/dev/null)"
  [ "$got" = "$want" ] || { echo "deb example: '$got' != edgellm run: '$want'"; exit 1; }
  echo "deb: edgellm --version and the example from the unpacked package work"
  exit 0
fi

prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
echo "installed tree:"
(cd "$prefix" && find . -type f -o -type l | sort | grep -v '/workers/')
"$prefix/bin/edgellm" --version
want="$("$prefix/bin/edgellm" run -m "$model" -p "$prompt" -n $n --temp 0 2>/dev/null)"
[ -n "$want" ] || { echo "edgellm run printed nothing"; exit 1; }
echo "edgellm run: $want"

# find_package(edgellm 0.1 REQUIRED) -> edgellm::edgellm
cmake -S "$src/examples" -B "$tmp/ex" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >"$tmp/cfg.log" 2>&1 ||
  { cat "$tmp/cfg.log"; exit 1; }
cmake --build "$tmp/ex" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
# pkg-config edgellm
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --modversion edgellm
cc "$src/examples/simple.c" $(pkg-config --cflags --libs edgellm) -Wl,-rpath,"$(pkg-config --variable=libdir edgellm)" \
  -o "$tmp/simple_pc"
c++ -std=c++17 "$src/examples/simple.cpp" $(pkg-config --cflags --libs edgellm) \
  -Wl,-rpath,"$(pkg-config --variable=libdir edgellm)" -o "$tmp/simple_cpp_pc"

status=0
for exe in "$tmp/ex/simple" "$tmp/ex/simple_cpp" "$tmp/simple_pc" "$tmp/simple_cpp_pc"; do
  got="$("$exe" "$model" "$prompt" $n 2>"$tmp/err")" || { cat "$tmp/err"; status=1; continue; }
  if [ "$got" = "$want" ]; then
    echo "ok   $(basename "$exe"): same text as edgellm run"
  else
    echo "FAIL $(basename "$exe"): '$got'"; status=1
  fi
done
# A bad model path is a clear error, not a crash.
if "$tmp/ex/simple" /nonexistent.gguf "$prompt" 2>"$tmp/err"; then echo "FAIL: bad path accepted"; status=1; fi
grep -q "EDGELLM_ERR_IO" "$tmp/err" || { echo "FAIL: no IO error: $(cat "$tmp/err")"; status=1; }
exit $status
