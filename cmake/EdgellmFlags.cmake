# Compiler flags shared by every edgellm target.
add_library(edgellm_flags INTERFACE)
target_compile_options(edgellm_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
if(EDGELLM_NATIVE)
  target_compile_options(edgellm_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()
if(EDGELLM_SANITIZE)
  target_compile_options(edgellm_flags INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined>)
  target_link_options(edgellm_flags INTERFACE -fsanitize=address,undefined)
endif()

# SIMD variants live in files named *_avx2.cpp, *_avx512.cpp, *_neon.cpp; each is compiled
# with its ISA flags and reached only through runtime dispatch.
function(edgellm_simd_flags)
  foreach(f IN LISTS ARGN)
    if(f MATCHES "_avx2\\.cpp$")
      if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
        set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "-mavx2;-mfma;-mf16c")
      endif()
    elseif(f MATCHES "_avx512\\.cpp$")
      if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
        set(opts "-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx512vnni;-mavx2;-mfma;-mf16c")
        # *_bf16_avx512.cpp also uses vdpbf16ps; reached only where CPUID reports AVX512_BF16.
        if(f MATCHES "_bf16_avx512\\.cpp$")
          list(APPEND opts "-mavx512bf16")
        endif()
        set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "${opts}")
      endif()
    elseif(f MATCHES "_neon\\.cpp$")
      if(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
        set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "-march=armv8.2-a+fp16+dotprod")
      endif()
    endif()
  endforeach()
endfunction()

# Fuzzing: instrument the whole library for coverage so libFuzzer can steer into the parsers.
if(EDGELLM_FUZZ)
  target_compile_options(edgellm_flags INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer>)
  target_link_options(edgellm_flags INTERFACE -fsanitize=address,undefined)
endif()
