"""Exit 0 when the installed llama-cpp-python's llama.cpp was compiled with AMX, 1 otherwise
(also when llama-cpp-python or its CPU library is missing). Used by scripts/install-deps.sh."""
import ctypes
import glob
import os
import sys

try:
    import llama_cpp
except Exception:
    sys.exit(1)

libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
libs = sorted(glob.glob(os.path.join(libdir, "libggml-cpu.so*")) + glob.glob(os.path.join(libdir, "libggml.so*")))
for path in libs:
    try:
        lib = ctypes.CDLL(path)
        has_amx = lib.ggml_cpu_has_amx_int8
    except (OSError, AttributeError):
        continue
    has_amx.restype = ctypes.c_int
    sys.exit(0 if has_amx() else 1)
sys.exit(1)
