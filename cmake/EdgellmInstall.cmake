# `cmake --install build --prefix P`: the CLI (tools/edgellm), and with EDGELLM_SHARED the C API
# library, its header, the CMake package (find_package(edgellm 0.1) -> edgellm::edgellm) and
# edgellm.pc; CPack makes a .deb of the same tree (cpack -G DEB in the build directory).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

if(TARGET edgellm_shared)
  install(TARGETS edgellm_shared EXPORT edgellmTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(FILES ${PROJECT_SOURCE_DIR}/include/edgellm/edgellm.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/edgellm)
  set(_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/edgellm)
  install(EXPORT edgellmTargets NAMESPACE edgellm:: DESTINATION ${_cmake_dir})
  configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/edgellmConfig.cmake.in
    ${PROJECT_BINARY_DIR}/edgellmConfig.cmake INSTALL_DESTINATION ${_cmake_dir})
  # 0.x: a new minor version may break the API, so 0.1 accepts 0.1.* only.
  write_basic_package_version_file(${PROJECT_BINARY_DIR}/edgellmConfigVersion.cmake
    VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${PROJECT_BINARY_DIR}/edgellmConfig.cmake ${PROJECT_BINARY_DIR}/edgellmConfigVersion.cmake
    DESTINATION ${_cmake_dir})
  # pkg-config file with the prefix given at install time (cmake --install --prefix P; /usr in the
  # .deb), written to a folder of its own per destination so parallel installs do not mix them.
  install(CODE "
    set(PROJECT_VERSION \"${PROJECT_VERSION}\")
    set(CMAKE_INSTALL_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
    set(CMAKE_INSTALL_INCLUDEDIR \"${CMAKE_INSTALL_INCLUDEDIR}\")
    string(MD5 _dest \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
    set(_pc \"${PROJECT_BINARY_DIR}/install-pc/\${_dest}/edgellm.pc\")
    configure_file(\"${PROJECT_SOURCE_DIR}/cmake/edgellm.pc.in\" \"\${_pc}\" @ONLY)
    file(INSTALL \"\${_pc}\" DESTINATION \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig\")
  ")
  install(FILES ${PROJECT_SOURCE_DIR}/examples/simple.c ${PROJECT_SOURCE_DIR}/examples/simple.cpp
    ${PROJECT_SOURCE_DIR}/examples/CMakeLists.txt DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
endif()

# CPack: `cpack -G DEB` in the build directory makes edgellm_<version>_<arch>.deb (CLI, library,
# header, CMake package, pkg-config file).
set(CPACK_PACKAGE_NAME edgellm)
set(CPACK_PACKAGE_VENDOR edgellm)
set(CPACK_PACKAGE_CONTACT "edgellm maintainers <edgellm@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "LLM runtime for edge devices: CLI, server, C API")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS OFF)  # dpkg-shlibdeps is not always installed; deps listed by hand
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6, libstdc++6, libgomp1, libfmt9, libpcre2-8-0, libutf8proc2, libcpp-httplib0.11, zlib1g, libssl3, libedit2")
set(CPACK_GENERATOR DEB)
include(CPack)
