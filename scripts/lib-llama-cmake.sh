# The CMake setup shared by the llama.cpp and ik_llama.cpp builds (sourced, not run): llama.cpp's
# default flags (-march=native) without AMX (the reason is in scripts/install-deps.sh), static,
# Release, ccache and Ninja when present. Sets the array llama_cmake_args.
llama_cmake_args=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF
                  -DBUILD_SHARED_LIBS=OFF)
if [ "$(uname -m)" = x86_64 ]; then
  llama_cmake_args+=(-DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
                     -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
fi
command -v ccache >/dev/null && llama_cmake_args+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
command -v ninja >/dev/null && llama_cmake_args+=(-G Ninja)
true
