# Third-party dependencies, all from Debian packages (scripts/install-deps.sh installs them).
find_package(Threads REQUIRED)
find_package(fmt REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
pkg_check_modules(UTF8PROC REQUIRED IMPORTED_TARGET libutf8proc)
# cpp-httplib is header-only in Debian; its .pc lives under the cpp-httplib name.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
# The server's HTTP layer: Boost.Beast and Asio (header-only, libboost1.81-dev), zlib for
# gzip/deflate request bodies.
find_package(Boost 1.81 REQUIRED CONFIG)
find_package(ZLIB REQUIRED)
# SHA-256 for the model store (libssl-dev; cpp-httplib's HTTPS client needs it anyway).
find_package(OpenSSL REQUIRED COMPONENTS Crypto)
if(EDGELLM_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(EDGELLM_BUILD_BENCH)
  find_package(benchmark QUIET)
endif()
