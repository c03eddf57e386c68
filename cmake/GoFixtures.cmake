# Go test programs, built with every Go toolchain the install script provides, cached in the build tree.
# go_fixture(NAME DIR) defines outputs ${GO_FIXTURE_DIR}/NAME/go<ver>/<variant> for each variant:
#   default   plain `go build`
#   stripped  -ldflags='-s -w' (no .symtab, no DWARF), what most production binaries look like
#   pie       -buildmode=pie, internally linked
#   pieext    -buildmode=pie -linkmode=external (pclntab moves into .data.rel.ro)
set(CTXAGENT_GO_VERSIONS 1.19 1.21 1.22 1.23 1.24 1.26 1.27 CACHE STRING "Go toolchains to build fixtures with")
set(GO_FIXTURE_DIR ${CMAKE_BINARY_DIR}/go_fixtures CACHE PATH "Where Go fixture binaries are built (share one across build trees)")
set(GO_FIXTURE_VARIANTS default stripped pie pieext)

set(GO_AVAILABLE_VERSIONS "")
foreach(v ${CTXAGENT_GO_VERSIONS})
  if(EXISTS /usr/lib/go-${v}/bin/go)
    list(APPEND GO_AVAILABLE_VERSIONS ${v})
  else()
    # Expected without the tests (scripts/demo.sh installs one toolchain): only a note then.
    if(BUILD_TESTING)
      set(level WARNING)
    else()
      set(level STATUS)
    endif()
    message(${level} "Go ${v} not installed (/usr/lib/go-${v}); its fixtures are not built. Run scripts/install-deps.sh")
  endif()
endforeach()

add_custom_target(go_fixtures ALL)

function(go_fixture name dir)
  get_filename_component(dir_abs ${dir} ABSOLUTE)
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${dir_abs}/*.go ${dir_abs}/go.mod)
  set(outputs "")
  foreach(v ${GO_AVAILABLE_VERSIONS})
    set(env GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOPATH=${CMAKE_BINARY_DIR}/gopath
        GOCACHE=${CMAKE_BINARY_DIR}/gocache/go${v})
    foreach(variant ${GO_FIXTURE_VARIANTS})
      set(out ${GO_FIXTURE_DIR}/${name}/go${v}/${variant})
      set(flags "")
      set(cgo 0)
      if(variant STREQUAL "stripped")
        set(flags "-ldflags=-s -w")
      elseif(variant STREQUAL "pie")
        set(flags -buildmode=pie)
      elseif(variant STREQUAL "pieext")
        set(flags -buildmode=pie "-ldflags=-linkmode=external")
        set(cgo 1)
      endif()
      add_custom_command(
        OUTPUT ${out}
        COMMAND ${CMAKE_COMMAND} -E env ${env} CGO_ENABLED=${cgo}
                /usr/lib/go-${v}/bin/go build ${flags} -o ${out} .
        WORKING_DIRECTORY ${dir_abs}
        DEPENDS ${srcs}
        COMMENT "go${v} build ${name} (${variant})"
        VERBATIM)
      list(APPEND outputs ${out})
    endforeach()
  endforeach()
  add_custom_target(go_fixture_${name} DEPENDS ${outputs})
  add_dependencies(go_fixtures go_fixture_${name})
endfunction()
